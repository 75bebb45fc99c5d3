"""What hubsync remembers between syncs: links, per-field state, conflicts, and the log.

Every function takes the caller's connection, so one sync's bookkeeping commits (or not) as
one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Update,
    bindparam,
    case,
    func,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.errors import HubsyncError
from app.sql import any_of, any_param, fetch_postgres, postgres_sql, write_postgres
from app.store import widened
from app.store.models import (
    CompanyAlias,
    Conflict,
    EntityLink,
    FieldState,
    SyncLog,
    Timestamp,
    table_of,
)
from app.store.upsert import insert_for, insert_rows
from app.sync.core.records import FieldMemory, Link

links = table_of(EntityLink)
field_states = table_of(FieldState)
conflicts = table_of(Conflict)
sync_log = table_of(SyncLog)
aliases = table_of(CompanyAlias)
# A link's columns that outgrew varchar(64) (app/store/widened.py).
LINK_TEXTS = ("warp_ban",)


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes for timezone-aware columns; they were stored as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


# -- links -----------------------------------------------------------------------------------


def _link(row: Mapping[Any, Any]) -> Link:
    """A link from a row of `select(links)`: SQLAlchemy's row mapping, or asyncpg's record."""
    return Link(
        row["id"],
        row["warp_customer_id"],
        row["hubspot_company_id"],
        widened.read(row, "warp_ban"),
        row["state"],
        as_utc(row["hubspot_read_at"]),
        as_utc(row["hubspot_written_at"]),
    )


async def links_by_customer(connection: AsyncConnection, ids: Sequence[str]) -> dict[str, Link]:
    if not ids:
        return {}
    if connection.dialect.name == "postgresql":  # a batch's hundred: straight from asyncpg
        found = await _LINKS_BY_CUSTOMER.fetch(connection, ids=list(ids))
        return {row["warp_customer_id"]: _link(row) for row in found}
    rows = await connection.execute(
        select(links).where(any_of(connection, links.c.warp_customer_id, ids))
    )
    return {row.warp_customer_id: _link(row._mapping) for row in rows}


_LINKS_BY_CUSTOMER = postgres_sql(select(links).where(any_param(links.c.warp_customer_id, "ids")))


async def links_by_company(connection: AsyncConnection, ids: Sequence[str]) -> dict[str, Link]:
    if not ids:
        return {}
    rows = await connection.execute(
        select(links).where(any_of(connection, links.c.hubspot_company_id, ids))
    )
    return {row.hubspot_company_id: _link(row._mapping) for row in rows}


async def unmatched_links_by_ban(
    connection: AsyncConnection, bans: Sequence[str]
) -> dict[str, Link]:
    """Companies seen without a customer (state `unmatched`), by the ban they held: how a
    customer that came later finds a company whose `warp_ban` HubSpot would not match
    exactly (bans are stored normalised; see app/sync/core/identity.py)."""
    if not bans:
        return {}
    rows = await connection.execute(
        select(links).where(
            widened.among(links, "warp_ban", bans),
            links.c.warp_customer_id.is_(None),
            links.c.state == "unmatched",
            links.c.hubspot_company_id.is_not(None),
        )
    )
    found = (_link(row._mapping) for row in rows)
    return {link.warp_ban: link for link in found if link.warp_ban is not None}


async def save_link(
    connection: AsyncConnection,
    *,
    customer_id: str | None,
    company_id: str | None,
    ban: str | None,
    state: str = "active",
) -> None:
    """Record customer <-> company. Either side's old link is re-pointed, never duplicated."""
    stamp = now()
    if customer_id is not None and company_id is not None:
        # A company that was waiting for its customer ("unmatched") joins the customer's link.
        await connection.execute(
            links.delete().where(
                links.c.hubspot_company_id == company_id,
                (links.c.warp_customer_id.is_(None)) | (links.c.warp_customer_id != customer_id),
            )
        )
    key = links.c.warp_customer_id if customer_id is not None else links.c.hubspot_company_id
    existing = (
        await connection.execute(
            select(links.c.id).where(
                key == (customer_id if customer_id is not None else company_id)
            )
        )
    ).first()
    values = widened.written(
        {
            "warp_customer_id": customer_id,
            "hubspot_company_id": company_id,
            "warp_ban": ban,
            "state": state,
            "updated_at": stamp,
            "deleted_at": stamp if state == "deleted" else None,
        },
        LINK_TEXTS,
    )
    if existing is None:
        await connection.execute(links.insert().values(**values, created_at=stamp))
    else:
        await connection.execute(update(links).where(links.c.id == existing.id).values(**values))


async def save_active_links(
    connection: AsyncConnection, pairs: Sequence[tuple[str, str, str | None]]
) -> None:
    """`save_link` for many (customer id, company id, ban) pairs in two statements: a row
    that held one of these companies for no or another customer is dropped (a company that
    waited for its customer joins the customer's link), then one upsert on the customer."""
    if not pairs:
        return
    stamp = now()
    await connection.execute(
        links.delete().where(
            links.c.hubspot_company_id.in_([company for _, company, _ in pairs]),
            links.c.warp_customer_id.is_(None)
            | ~tuple_(links.c.warp_customer_id, links.c.hubspot_company_id).in_(
                [(customer, company) for customer, company, _ in pairs]
            ),
        )
    )
    statement = insert_for(connection, links)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=["warp_customer_id"],
            set_={
                "hubspot_company_id": statement.excluded.hubspot_company_id,
                "warp_ban": statement.excluded.warp_ban,
                "warp_ban_text": statement.excluded.warp_ban_text,
                "state": statement.excluded.state,
                "updated_at": statement.excluded.updated_at,
                "deleted_at": None,
            },
        ),
        [
            widened.written(
                {
                    "warp_customer_id": customer,
                    "hubspot_company_id": company,
                    "warp_ban": ban,
                    "state": "active",
                    "created_at": stamp,
                    "updated_at": stamp,
                },
                LINK_TEXTS,
            )
            for customer, company, ban in pairs
        ],
    )


class CompanyTakenError(HubsyncError):
    """The company is linked to another customer already."""

    def __init__(self, company_id: str, holder: Link) -> None:
        super().__init__(
            f"HubSpot company {company_id} is linked to customer {holder.warp_customer_id} "
            f"(link state {holder.state})"
        )
        self.holder = holder


async def relink_customer(
    connection: AsyncConnection, customer_id: str, company_id: str | None, ban: str | None
) -> Link:
    """An operator's decision for a held customer: link it to `company_id`, or to no company
    (None: its next sync creates one of its own). What hubsync remembered of the old pairing
    (field state, open conflicts) is dropped: the next sync compares the new pair afresh.
    Raises `CompanyTakenError` when another customer holds the company."""
    if company_id is not None:
        holder = (await links_by_company(connection, [company_id])).get(company_id)
        if holder is not None and holder.warp_customer_id not in (None, customer_id):
            raise CompanyTakenError(company_id, holder)
    await save_link(connection, customer_id=customer_id, company_id=company_id, ban=ban)
    await connection.execute(
        field_states.delete().where(field_states.c.warp_customer_id == customer_id)
    )
    await resolve_all_conflicts(connection, [customer_id], "RELINK")
    return (await links_by_customer(connection, [customer_id]))[customer_id]


async def note_synced(
    connection: AsyncConnection,
    links_seen: Sequence[tuple[str, bool, datetime | None, datetime | None]],
) -> None:
    """What a batch's sync leaves on each link, one statement for the batch on PostgreSQL
    (each link row updated once, not once per kind of note): (customer id, whether it is now
    in sync (`last_synced_at` set to now; not while a pause holds some of its writes), when
    its company was read, when HubSpot recorded hubsync's write of it). A time not given
    leaves the link's as it was; a row with nothing to note is left alone."""
    rows = [row for row in links_seen if row[1] or row[2] is not None or row[3] is not None]
    if not rows:
        return
    at = now()
    if connection.dialect.name == "postgresql":
        await write_postgres(
            connection,
            _NOTE_SYNCED_SQL,
            at,
            [customer_id for customer_id, _, _, _ in rows],
            [synced for _, synced, _, _ in rows],
            [read_at for _, _, read_at, _ in rows],
            [written_at for _, _, _, written_at in rows],
        )
        return
    await connection.execute(
        update(links)
        .where(links.c.warp_customer_id == bindparam("customer"))
        .values(
            last_synced_at=case(
                (bindparam("synced", type_=Boolean), bindparam("at", type_=Timestamp)),
                else_=links.c.last_synced_at,
            ),
            hubspot_read_at=func.coalesce(
                bindparam("read", type_=Timestamp), links.c.hubspot_read_at
            ),
            hubspot_written_at=func.coalesce(
                bindparam("written", type_=Timestamp), links.c.hubspot_written_at
            ),
        ),
        [{"customer": c, "synced": s, "at": at, "read": r, "written": w} for c, s, r, w in rows],
    )


_NOTE_SYNCED_SQL = (
    f"UPDATE {links.name} AS link"
    " SET last_synced_at = CASE WHEN seen.synced THEN $1 ELSE link.last_synced_at END,"
    " hubspot_read_at = COALESCE(seen.read_at, link.hubspot_read_at),"
    " hubspot_written_at = COALESCE(seen.written_at, link.hubspot_written_at)"
    " FROM unnest(CAST($2 AS VARCHAR[]), CAST($3 AS BOOLEAN[]),"
    " CAST($4 AS TIMESTAMP WITH TIME ZONE[]), CAST($5 AS TIMESTAMP WITH TIME ZONE[]))"
    " AS seen(customer_id, synced, read_at, written_at)"
    " WHERE link.warp_customer_id = seen.customer_id"
)


async def set_link_state(
    connection: AsyncConnection, company_id: str, state: str, *, at: datetime | None = None
) -> bool:
    """Set the link's state; whether a link changed. With `at` (a deletion or restore: when
    it happened, or when a 404 was seen) the change applies only if nothing newer was applied
    before it, so deletions and restores take effect in the order they happened."""
    stamp = now()
    values: dict[str, Any] = {
        "state": state,
        "updated_at": stamp,
        "deleted_at": (at or stamp) if state == "deleted" else None,
    }
    query = update(links).where(links.c.hubspot_company_id == company_id)
    if at is not None:
        values["state_changed_at"] = at
        query = query.where(links.c.state_changed_at.is_(None) | (links.c.state_changed_at <= at))
    result = await connection.execute(query.values(**values))
    return bool(result.rowcount)


async def set_customer_link_state(
    connection: AsyncConnection, customer_ids: Sequence[str], state: str
) -> None:
    if customer_ids:
        await connection.execute(
            update(links)
            .where(links.c.warp_customer_id.in_(list(customer_ids)))
            .values(state=state, updated_at=now())
        )


async def resolve_company_ids(connection: AsyncConnection, ids: Sequence[str]) -> dict[str, str]:
    """Each id mapped to the id it now resolves to (after merges); unknown ids map to themselves."""
    resolved = {company_id: company_id for company_id in ids}
    pending = set(ids)
    for _ in range(10):  # merges can chain; ten hops is far beyond any real history
        if not pending:
            break
        rows = await connection.execute(
            select(aliases.c.old_company_id, aliases.c.company_id).where(
                aliases.c.old_company_id.in_(list(pending))
            )
        )
        step = {row.old_company_id: row.company_id for row in rows}
        for original, current in resolved.items():
            if current in step:
                resolved[original] = step[current]
        pending = set(step.values()) - set(step)
    return resolved


async def add_alias(connection: AsyncConnection, old_id: str, new_id: str, reason: str) -> None:
    if old_id == new_id:
        return
    statement = insert_for(connection, aliases).values(
        old_company_id=old_id, company_id=new_id, reason=reason, created_at=now()
    )
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=["old_company_id"], set_={"company_id": new_id, "reason": reason}
        )
    )
    await connection.execute(
        update(aliases).where(aliases.c.company_id == old_id).values(company_id=new_id)
    )


async def forget_hubspot(connection: AsyncConnection) -> None:
    """Drop everything hubsync knows about HubSpot's side (links, field state, aliases, open
    conflicts): for moving to another portal on purpose (`app.store.portal.reset_portal`)."""
    for table in (links, field_states, aliases):
        await connection.execute(table.delete())
    await connection.execute(conflicts.delete().where(conflicts.c.state == "open"))


# -- field state -----------------------------------------------------------------------------


def memory_of(row: Any) -> FieldMemory:
    """One `hubspot_field_state` row as the field's memory."""
    return FieldMemory(
        row.warp_value,
        row.hubspot_value,
        row.base_value,
        as_utc(row.warp_changed_at),
        as_utc(row.hubspot_changed_at),
        as_utc(row.synced_at),
        row.hubspot_property,
        as_utc(row.hubspot_write_read_at),
    )


async def field_memory(
    connection: AsyncConnection, customer_ids: Sequence[str]
) -> dict[str, dict[str, FieldMemory]]:
    """Per customer, per field: what hubsync last saw and synced (a batch's ~1,000 rows, read
    as plain tuples: no row objects, no name lookups; on PostgreSQL straight from asyncpg,
    where SQLAlchemy's result would double the read's CPU)."""
    memory: dict[str, dict[str, FieldMemory]] = {}
    if not customer_ids:
        return memory
    if connection.dialect.name == "postgresql":
        # asyncpg hands back `timestamptz` values aware (UTC): taken as they come, the row's
        # columns after the key as the memory's tuple (`_MEMORY_COLUMNS` follows its fields).
        make = tuple.__new__
        for row in await fetch_postgres(connection, _MEMORY_SQL, list(customer_ids)):
            fields = memory.get(row[0])
            if fields is None:
                memory[row[0]] = fields = {}
            fields[row[1]] = make(FieldMemory, row[2:])
        return memory
    rows = await connection.execute(
        select(*_MEMORY_COLUMNS).where(field_states.c.warp_customer_id.in_(customer_ids))
    )
    for customer_id, field, warp, hubspot, base, warp_at, hubspot_at, synced, prop, wrote in rows:
        memory.setdefault(customer_id, {})[field] = FieldMemory(
            warp,
            hubspot,
            base,
            as_utc(warp_at),
            as_utc(hubspot_at),
            as_utc(synced),
            prop,
            as_utc(wrote),
        )
    return memory


# The customer, the field, then the memory's own fields in their order (its columns share
# their names).
_MEMORY_COLUMNS = (
    field_states.c.warp_customer_id,
    field_states.c.field,
    *(field_states.c[name] for name in FieldMemory._fields),
)
_MEMORY_SQL = (
    f"SELECT {', '.join(c.name for c in _MEMORY_COLUMNS)} FROM {field_states.name} "
    "WHERE warp_customer_id = ANY($1::varchar[])"
)


async def note_warp_values(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Remember WARP values (and when they changed) as soon as a sync reads them, even if
    the sync then fails: WARP keeps no per-field times, so the first sighting is the best
    per-field time there is. Rows: warp_customer_id, field, hubspot_property, warp_value,
    warp_changed_at. The merge base and HubSpot's side are left as they are."""
    if not rows:
        return
    stamp = now()
    await insert_rows(
        connection,
        field_states,
        [{**row, "updated_at": stamp} for row in rows],
        conflict=_FIELD_STATE_KEY,
        update=("warp_value", "warp_changed_at", "updated_at"),
    )


async def save_field_states(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Upsert rows of `hubspot_field_state` (keys: the table's columns)."""
    if not rows:
        return
    stamp = now()
    for row in rows:
        row.setdefault("updated_at", stamp)
    columns = tuple(c for c in rows[0] if c not in _FIELD_STATE_KEY)
    await insert_rows(connection, field_states, rows, conflict=_FIELD_STATE_KEY, update=columns)


_FIELD_STATE_KEY = ("warp_customer_id", "field")


# -- conflicts -------------------------------------------------------------------------------


async def open_conflict(connection: AsyncConnection, values: Mapping[str, Any]) -> None:
    """Record (or refresh) the open conflict of a customer's field."""
    existing = (
        await connection.execute(
            select(conflicts.c.id).where(
                conflicts.c.warp_customer_id == values["warp_customer_id"],
                conflicts.c.field == values["field"],
                conflicts.c.state == "open",
            )
        )
    ).first()
    if existing is None:
        await connection.execute(conflicts.insert().values(**values, detected_at=now()))
    else:
        await connection.execute(
            update(conflicts).where(conflicts.c.id == existing.id).values(**values)
        )


async def close_conflicts(
    connection: AsyncConnection, customer_id: str, fields: Iterable[str], resolution: str
) -> None:
    names = list(fields)
    if names:
        await connection.execute(
            update(conflicts)
            .where(
                conflicts.c.warp_customer_id == customer_id,
                conflicts.c.field.in_(names),
                conflicts.c.state == "open",
            )
            .values(state="resolved", resolution=resolution, resolved_by="sync", resolved_at=now())
        )


async def resolve_all_conflicts(
    connection: AsyncConnection, customer_ids: Sequence[str], resolution: str
) -> None:
    """Close every open conflict of these customers: a sync settled all their fields."""
    ids = list(customer_ids)
    values = {"ids": ids, "resolution": resolution, "at": now()}
    if ids and connection.dialect.name == "postgresql":  # every batch: straight to asyncpg
        await _RESOLVE_ALL_POSTGRES.write(connection, **values)
    elif ids:
        await connection.execute(_RESOLVE_ALL, values)


# A literal, not a parameter: in the generic plan PostgreSQL keeps for a hot prepared
# statement, only then can the partial index of open conflicts serve it (it would read every
# open conflict of the deployment, every batch).
_OPEN: ColumnElement[str] = literal_column("'open'")


def _resolve_all(ids: ColumnElement[bool]) -> Update:
    return (
        update(conflicts)
        .where(ids, conflicts.c.state == _OPEN)
        .values(
            state="resolved",
            resolution=bindparam("resolution"),
            resolved_by="sync",
            resolved_at=bindparam("at", type_=Timestamp),
        )
    )


_RESOLVE_ALL = _resolve_all(conflicts.c.warp_customer_id.in_(bindparam("ids", expanding=True)))
_RESOLVE_ALL_POSTGRES = postgres_sql(_resolve_all(any_param(conflicts.c.warp_customer_id, "ids")))


# -- log -------------------------------------------------------------------------------------


async def write_log(connection: AsyncConnection, entries: list[dict[str, Any]]) -> None:
    if entries:
        stamp = now()
        await insert_rows(connection, sync_log, [{"created_at": stamp, **e} for e in entries])


async def open_conflicts_of(connection: AsyncConnection, customer_id: str) -> list[Any]:
    rows = await connection.execute(
        select(conflicts).where(
            conflicts.c.warp_customer_id == customer_id, conflicts.c.state == "open"
        )
    )
    return list(rows)
