"""Change capture in WARP (opt-in): a trigger on the customers table notes every change in a
small table of hubsync's own, so a SQL edit reaches hubsync without a job and without a
catch-up, and each column's change time is known (LATEST_WINS needs it).

PostgreSQL: schema `hubsync_capture`, table `changes` (the writing transaction's xid, customer
id, operation I/U/D, the changed columns, `clock_timestamp()`), one `AFTER INSERT OR UPDATE OR
DELETE … FOR EACH ROW` trigger calling a function (run as WARP's writer; INSERT on the change
table is granted to PUBLIC) that sends `NOTIFY hubsync_capture` only if installed with
`notify=True`. The function swallows any error of its own (RAISE WARNING, RETURN NULL):
capture can never fail WARP's transaction. The change table has no key, no index and no
sequence: each change costs WARP one heap insert, nothing more (an id column with its primary
key index and `nextval` was a third of the trigger's cost). The drain finds a row again by its
ctid, checked against the row's content (see `delete_changes`).

SQLite: table `hubsync_capture_changes` beside the customers table and three triggers (SQLite
allows one event per trigger); it has no NOTIFY, so the drain polls.

The trigger compares every column the table had at install time except `created_at` and
`updated_at` (a touch of `updated_at` alone is no change), not only the columns the rules map:
rules change at run time without a reinstall, and the drain keeps the columns they map.

Reading: `read_changes` never passes a change whose transaction may still commit behind it:
on PostgreSQL it returns only rows whose xid is below the oldest transaction still open that
has written a change (PG_HORIZON: `pg_snapshot_xmin` narrowed to capture's writers); SQLite has
one writer, so its id (rowid) order is commit order. Drained rows are deleted; a row is only
ever deleted after it was drained, so no change is skipped whatever the order. Within what
may pass, the order does not matter: a customer's jobs coalesce and a column's change time
only moves forward (`note_column_changes`), so PostgreSQL reads in heap order, with no sort:
a backlog of millions costs each batch its own rows, not a scan and sort of the backlog.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.warp.schema import split_table_name

CAPTURE_SCHEMA = "hubsync_capture"
NOTIFY_CHANNEL = "hubsync_capture"
# per session: when (epoch seconds) it may send the next NOTIFY
NOTIFY_SETTING = "hubsync_capture.notify_after_epoch"
NOTIFY_EVERY_SECONDS = 0.1
PG_TRIGGER = "hubsync_capture"
SQLITE_TABLE = "hubsync_capture_changes"
SQLITE_TRIGGERS = {
    "I": "hubsync_capture_insert",
    "U": "hubsync_capture_update",
    "D": "hubsync_capture_delete",
}
UNWATCHED_COLUMNS = frozenset({"created_at", "updated_at"})
DELETE_BATCH = 1000

# The commit-order horizon: the oldest transaction still open *that has written a change*
# (it holds ROW EXCLUSIVE on the change table until it ends; its 32-bit xid in pg_locks is
# matched to the snapshot's 64-bit in-progress xids), else the snapshot's xmax. It is
# `pg_snapshot_xmin(pg_current_snapshot())` narrowed to capture's own writers: the plain xmin
# is the whole server's, so any long writing transaction in any database would hold every
# change back for as long as it runs.
PG_HORIZON = f"""
writers AS (
    SELECT x FROM pg_snapshot_xip(pg_current_snapshot()) AS x
    WHERE (x::text::numeric % 4294967296)::text IN (
        SELECT t.transactionid::text
        FROM pg_locks l
        JOIN pg_locks t ON t.pid = l.pid AND t.locktype = 'transactionid'
        WHERE l.locktype = 'relation' AND l.mode = 'RowExclusiveLock'
          AND l.relation = to_regclass('{CAPTURE_SCHEMA}.changes')
    )
),
horizon AS (
    SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot())) AS below FROM writers
)"""


# Drained rows by ctid (a TID scan, never a scan of a backlog), each checked against what was
# drained.
PG_DELETE = """DELETE FROM {changes} AS c
USING unnest(CAST(CAST(:rows AS text[]) AS tid[]), CAST(CAST(:xids AS text[]) AS xid8[]),
             CAST(:customers AS text[]), CAST(:times AS timestamptz[]))
      AS d(row, xid, customer_id, changed_at)
WHERE c.ctid = ANY (CAST(CAST(:rows AS text[]) AS tid[]))
  AND c.ctid = d.row AND c.xid = d.xid AND c.customer_id = d.customer_id
  AND c.changed_at = d.changed_at"""


@dataclass(frozen=True)
class Change:
    row: str  # where the change row is: its ctid on PostgreSQL, its id (rowid) on SQLite
    xid: int  # the writing transaction (PostgreSQL; 0 on SQLite)
    customer_id: str
    operation: str  # I, U or D
    columns: tuple[str, ...]
    changed_at: datetime


@dataclass(frozen=True)
class CaptureStatus:
    installed: bool
    pending: int
    oldest: datetime | None
    watched: tuple[str, ...]  # the columns the installed trigger compares
    notify: bool = False  # the trigger sends NOTIFY hubsync_capture (PostgreSQL)

    def to_json(self) -> dict[str, Any]:
        return {
            "installed": self.installed,
            "pending_changes": self.pending,
            "oldest_pending": self.oldest.isoformat() if self.oldest else None,
            "watched_columns": list(self.watched),
            "notify": self.notify,
        }


def _quote(connection: AsyncConnection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def _table_sql(connection: AsyncConnection, qualified: str) -> str:
    schema, name = split_table_name(qualified)
    quoted = _quote(connection, name)
    return f"{_quote(connection, schema)}.{quoted}" if schema else quoted


async def table_columns(connection: AsyncConnection, qualified: str) -> list[str]:
    schema, name = split_table_name(qualified)

    def read(sync_connection: Any) -> list[str]:
        return [c["name"] for c in inspect(sync_connection).get_columns(name, schema=schema)]

    columns = await connection.run_sync(read)
    if not columns:
        raise LookupError(f"the WARP customers table {qualified!r} does not exist")
    return columns


class Capture:
    """Install, remove and read the capture on one WARP database and customers table."""

    def __init__(self, engine: AsyncEngine, table_name: str) -> None:
        self.engine = engine
        self.table_name = table_name
        self.postgres = engine.dialect.name == "postgresql"
        schema, _ = split_table_name(table_name)
        self._sqlite_schema = schema

    # -- install / uninstall / status ------------------------------------------------------

    async def install(self, *, notify: bool = False) -> CaptureStatus:
        """Create (or re-create, with the table's current columns) the trigger and its table.
        Idempotent; changes already noted are kept. `notify=True` (PostgreSQL): the trigger
        also sends NOTIFY, throttled per session, to wake the drain at once. Off by default:
        its throttle check is a sixth of the trigger's CPU per UPDATE, and a notifying commit
        takes a server-wide lock that serialises WARP's notifying writers; the drain's poll
        finds the changes."""
        async with self.engine.begin() as connection:
            columns = [c for c in await table_columns(connection, self.table_name) if c != "id"]
            watched = [c for c in columns if c not in UNWATCHED_COLUMNS]
            statements = (
                self._pg_install(connection, watched, notify=notify)
                if self.postgres
                else self._sqlite_install(connection, watched)
            )
            for statement in statements:
                await connection.exec_driver_sql(statement)
        return await self.status()

    async def uninstall(self) -> CaptureStatus:
        """Drop the trigger(s), the function and the change table: WARP as it was before."""
        async with self.engine.begin() as connection:
            table = _table_sql(connection, self.table_name)
            if self.postgres:
                await connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {PG_TRIGGER} ON {table}")
                await connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {CAPTURE_SCHEMA} CASCADE")
            else:
                prefix = self._sqlite_prefix(connection)
                for trigger in SQLITE_TRIGGERS.values():
                    await connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {prefix}{trigger}")
                await connection.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}{SQLITE_TABLE}")
        return await self.status()

    async def status(self) -> CaptureStatus:
        async with self.engine.connect() as connection:
            if not await self._installed(connection):
                return CaptureStatus(False, 0, None, ())
            changes = self._changes_sql(connection)
            result = await connection.execute(
                text(f"SELECT count(*), min(changed_at) FROM {changes}")
            )
            count, oldest = result.one()
            watched, notify = await self._watched(connection)
        return CaptureStatus(True, int(count), _moment(oldest), watched, notify)

    async def any_left(self) -> bool:
        """Whether any change is still in the table (after a drain: held behind a transaction
        still open, or just written)."""
        async with self.engine.connect() as connection:
            changes = self._changes_sql(connection)
            found = await connection.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {changes})"))
            return bool(found)

    async def installed(self) -> bool:
        async with self.engine.connect() as connection:
            return await self._installed(connection)

    # -- reading ---------------------------------------------------------------------------

    async def read_changes(self, limit: int) -> list[Change]:
        """At most `limit` changes of finished transactions (none that a transaction still
        open may commit behind)."""
        async with self.engine.connect() as connection:
            changes = self._changes_sql(connection)
            if self.postgres:
                rows = await connection.execute(
                    text(
                        f"WITH {PG_HORIZON} "
                        "SELECT ctid::text, xid::text, customer_id, operation, columns, "
                        f"changed_at FROM {changes}, horizon WHERE xid < horizon.below "
                        "LIMIT :limit"
                    ),
                    {"limit": limit},
                )
            else:
                rows = await connection.execute(
                    text(
                        "SELECT id, 0, customer_id, operation, columns, changed_at "
                        f"FROM {changes} ORDER BY id LIMIT :limit"
                    ),
                    {"limit": limit},
                )
            return [
                Change(
                    row=str(row[0]),
                    xid=int(row[1]),
                    customer_id=_customer_id(row[2]),
                    operation=str(row[3]),
                    columns=_columns(row[4]),
                    changed_at=_moment(row[5]) or datetime.now(UTC),
                )
                for row in rows
            ]

    async def delete_changes(self, drained: Sequence[Change]) -> None:
        """Delete drained rows, at most DELETE_BATCH per statement and transaction.

        PostgreSQL: by ctid, and only where the row there is still the one drained (same
        transaction, customer and time). A ctid moves only if the table is rewritten (VACUUM
        FULL, CLUSTER); then a row at a drained ctid may be another, undrained one, which must
        stay. A drained row that moved stays too and is drained again: its job coalesces."""
        # one order for every drain (each replica drains): deletes that overlap never deadlock
        wanted = sorted(drained, key=lambda c: _row_order(c.row))
        for start in range(0, len(wanted), DELETE_BATCH):
            chunk = wanted[start : start + DELETE_BATCH]
            async with self.engine.begin() as connection:
                changes = self._changes_sql(connection)
                if self.postgres:
                    await connection.execute(
                        text(PG_DELETE.format(changes=changes)),
                        {
                            "rows": [c.row for c in chunk],
                            "xids": [str(c.xid) for c in chunk],
                            "customers": [c.customer_id for c in chunk],
                            "times": [c.changed_at for c in chunk],
                        },
                    )
                    continue
                marks = ", ".join(f":i{n}" for n in range(len(chunk)))
                await connection.execute(
                    text(f"DELETE FROM {changes} WHERE id IN ({marks})"),
                    {f"i{n}": int(c.row) for n, c in enumerate(chunk)},
                )

    # -- PostgreSQL ------------------------------------------------------------------------

    def _pg_install(
        self, connection: AsyncConnection, watched: Sequence[str], *, notify: bool
    ) -> list[str]:
        table = _table_sql(connection, self.table_name)
        # One PL/pgSQL expression compares the columns: measured cheaper than an IF per
        # column, and than comparing inside the INSERT (whose plan builds the comparison
        # anew at every executor start).
        changed = ", ".join(
            f"CASE WHEN NEW.{_quote(connection, c)} IS DISTINCT FROM OLD.{_quote(connection, c)} "
            f"THEN '{c}' END"
            for c in watched
        )
        every = ", ".join(f"'{c}'" for c in watched)
        # NOTIFY serialises committing notifiers on a server-wide lock: each session sends
        # at most one every NOTIFY_EVERY_SECONDS; a change that sends none is found by the drain's
        # poll or the next notification. The session keeps, in epoch seconds, when it may send
        # the next: a float compared per change (parsing a timestamptz was 5 % of the
        # trigger's time).
        wake = (
            f"""IF date_part('epoch', clock_timestamp()) > coalesce(
            nullif(current_setting('{NOTIFY_SETTING}', true), ''), '0')::float8
    THEN
        PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
        PERFORM set_config('{NOTIFY_SETTING}',
            (date_part('epoch', clock_timestamp()) + {NOTIFY_EVERY_SECONDS})::text, false);
    END IF;"""
            if notify
            else ""
        )
        insert = f"INSERT INTO {CAPTURE_SCHEMA}.changes (customer_id, operation, columns)"
        return [
            f"CREATE SCHEMA IF NOT EXISTS {CAPTURE_SCHEMA}",
            f"""CREATE TABLE IF NOT EXISTS {CAPTURE_SCHEMA}.changes (
                xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
                customer_id text NOT NULL,
                operation char(1) NOT NULL,
                columns text[] NOT NULL,
                changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
            )""",
            # An install from before the table lost its key: drop the id column, and with
            # it its primary key and its sequence; the rows waiting are kept.
            f"ALTER TABLE {CAPTURE_SCHEMA}.changes DROP COLUMN IF EXISTS id",
            f"""CREATE OR REPLACE FUNCTION {CAPTURE_SCHEMA}.note_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
-- hubsync change capture; watched: {",".join(watched)}
DECLARE
    changed text[];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        changed := array_remove(ARRAY[{changed}], NULL);
        IF cardinality(changed) = 0 THEN
            RETURN NULL;
        END IF;
        {insert} VALUES (NEW.id::text, 'U', changed);
    ELSIF TG_OP = 'INSERT' THEN
        {insert} VALUES (NEW.id::text, 'I', ARRAY[{every}]::text[]);
    ELSE
        {insert} VALUES (OLD.id::text, 'D', '{{}}');
    END IF;
    {wake}
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'hubsync capture skipped a change: % (%)', SQLERRM, SQLSTATE;
    RETURN NULL;
END
$fn$""",
            # The function runs as WARP's writer (SECURITY INVOKER: no SECURITY DEFINER to
            # harden, no per-call search_path switch): any role may add a change row, none
            # may read or remove one but hubsync's.
            f"GRANT USAGE ON SCHEMA {CAPTURE_SCHEMA} TO PUBLIC",
            f"GRANT INSERT ON {CAPTURE_SCHEMA}.changes TO PUBLIC",
            f"DROP TRIGGER IF EXISTS {PG_TRIGGER} ON {table}",
            f"CREATE TRIGGER {PG_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {CAPTURE_SCHEMA}.note_change()",
        ]

    # -- SQLite ----------------------------------------------------------------------------

    def _sqlite_prefix(self, connection: AsyncConnection) -> str:
        schema = self._sqlite_schema
        return f"{_quote(connection, schema)}." if schema else ""

    def _sqlite_install(self, connection: AsyncConnection, watched: Sequence[str]) -> list[str]:
        prefix = self._sqlite_prefix(connection)
        _, name = split_table_name(self.table_name)
        table = _quote(connection, name)  # a trigger names its table unqualified
        now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        differs = " OR ".join(
            f"OLD.{_quote(connection, c)} IS NOT NEW.{_quote(connection, c)}" for c in watched
        )
        listed = " || ".join(
            f"CASE WHEN OLD.{_quote(connection, c)} IS NOT NEW.{_quote(connection, c)} "
            f"THEN '{c},' ELSE '' END"
            for c in watched
        )
        every = ",".join(watched)
        insert = f"INSERT INTO {SQLITE_TABLE} (customer_id, operation, columns, changed_at)"
        return [
            f"""CREATE TABLE IF NOT EXISTS {prefix}{SQLITE_TABLE} (
                id INTEGER PRIMARY KEY,
                customer_id TEXT NOT NULL,
                operation TEXT NOT NULL,
                columns TEXT NOT NULL,
                changed_at TEXT NOT NULL
            )""",
            *(f"DROP TRIGGER IF EXISTS {prefix}{t}" for t in SQLITE_TRIGGERS.values()),
            f"CREATE TRIGGER {prefix}{SQLITE_TRIGGERS['I']} AFTER INSERT ON {table} BEGIN "
            f"{insert} VALUES (NEW.id, 'I', '{every}', {now}); END",
            f"CREATE TRIGGER {prefix}{SQLITE_TRIGGERS['U']} AFTER UPDATE ON {table} "
            f"WHEN {differs} BEGIN "
            f"{insert} VALUES (NEW.id, 'U', rtrim({listed}, ','), {now}); END",
            f"CREATE TRIGGER {prefix}{SQLITE_TRIGGERS['D']} AFTER DELETE ON {table} BEGIN "
            f"{insert} VALUES (OLD.id, 'D', '', {now}); END",
        ]

    # -- shared ----------------------------------------------------------------------------

    def _changes_sql(self, connection: AsyncConnection) -> str:
        if self.postgres:
            return f"{CAPTURE_SCHEMA}.changes"
        return f"{self._sqlite_prefix(connection)}{SQLITE_TABLE}"

    async def _installed(self, connection: AsyncConnection) -> bool:
        if self.postgres:
            found = await connection.execute(
                text(
                    "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE t.tgname = :trigger AND c.oid = to_regclass(:table)"
                ),
                {"trigger": PG_TRIGGER, "table": _table_sql(connection, self.table_name)},
            )
            return bool(found.scalar_one())
        master = f"{self._sqlite_prefix(connection)}sqlite_master"
        found = await connection.execute(
            text(f"SELECT count(*) FROM {master} WHERE type = 'trigger' AND name LIKE :like"),
            {"like": "hubsync_capture_%"},
        )
        return int(found.scalar_one()) == len(SQLITE_TRIGGERS)

    async def _watched(self, connection: AsyncConnection) -> tuple[tuple[str, ...], bool]:
        """The columns the installed trigger compares, and whether it sends NOTIFY."""
        if self.postgres:
            source = await connection.scalar(
                text(
                    "SELECT prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = :schema AND p.proname = 'note_change'"
                ),
                {"schema": CAPTURE_SCHEMA},
            )
            marker = "-- hubsync change capture; watched: "
            notify = "pg_notify(" in str(source or "")
            for line in str(source or "").splitlines():
                if line.startswith(marker):
                    return tuple(c for c in line[len(marker) :].split(",") if c), notify
            return (), notify
        master = f"{self._sqlite_prefix(connection)}sqlite_master"
        sql = await connection.scalar(
            text(f"SELECT sql FROM {master} WHERE type = 'trigger' AND name = :name"),
            {"name": SQLITE_TRIGGERS["I"]},
        )
        inside = str(sql or "").split("'I', '", 1)
        if len(inside) < 2:
            return (), False
        return tuple(c for c in inside[1].split("'", 1)[0].split(",") if c), False


def _customer_id(value: Any) -> str:
    """The id in canonical UUID text (SQLite stores a Uuid column as 32 hex digits)."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(value)


def _row_order(row: str) -> tuple[int, ...]:
    """A ctid '(block,offset)' or a rowid, in the table's order."""
    return tuple(int(part) for part in row.strip("()").split(","))


def _columns(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(c for c in value.split(",") if c)
    return tuple(str(c) for c in value)


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None
