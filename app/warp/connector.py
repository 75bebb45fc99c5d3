"""The WARP side: a connector interface and its SQL implementation over the customers table.

The sync core talks to WARP only through `WarpConnector`, so another connector (an HTTP API,
say) could replace the SQL one. Records are plain dicts of the contract's columns with Python
values: `Decimal` for numerics, dicts for JSON columns, ISO strings never.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Table, TextClause, bindparam, select, text, true
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.sql import any_of, any_param, postgres_sql
from app.sync.core.identity import normalize_ban, usable_ban
from app.warp.schema import customers_table

CustomerRecord = dict[str, Any]
XID_WRAP = 2**32  # PostgreSQL's `xmin` is a 32-bit transaction id
JSON_COLUMNS = ("contact", "services", "external_ids")


class CustomerNotFoundError(LookupError):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} not found in WARP")
        self.customer_id = customer_id


@dataclass(frozen=True)
class WarpWrite:
    """Fields (top-level columns or JSON paths) to write on one customer, and optionally the
    HubSpot id to record in its `external_ids`. `expected` makes it a compare-and-set: the
    value each path held when it was read; the write is refused if any path holds another."""

    customer_id: str
    fields: Mapping[str, Any]
    hubspot_company_id: str | None = None
    expected: Mapping[str, Any] = field(default_factory=dict)


class Refusal(StrEnum):
    MISSING = "missing"  # no such customer (deleted since it was read)
    CHANGED = "changed"  # compare-and-set: a path no longer holds the value read
    REFUSED = "refused"  # the database refused the row (a constraint, a value out of range)


@dataclass(frozen=True)
class WriteRefusal:
    kind: Refusal
    reason: str


class WarpConnector(Protocol):
    async def fetch_customers(self, ids: Sequence[str]) -> dict[str, CustomerRecord]:
        """The customers with these ids (missing ones are absent), in one round trip."""

    async def fetch_customers_by_ban(self, bans: Sequence[str]) -> dict[str, CustomerRecord]:
        """The customers with these billing account numbers, keyed by ban."""

    async def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids are customers."""

    async def write_fields(
        self, customer_id: str, fields: Mapping[str, Any], hubspot_company_id: str | None = None
    ) -> CustomerRecord:
        """Write top-level columns or JSON paths (`contact.email`) and, when given, the
        HubSpot id into `external_ids`, keeping every other key. Returns the new record."""

    async def write_many(self, writes: Sequence[WarpWrite]) -> dict[str, WriteRefusal]:
        """`write_fields` for many customers; each row stands alone: the rows not written
        come back, by customer id, with the reason (missing, changed since read, refused by
        the database). Raises only when the database cannot be reached."""

    def iter_customers(
        self, batch_size: int = 500, *, after: str | None = None
    ) -> AsyncIterator[list[CustomerRecord]]:
        """Every customer (with an id above `after`), in batches ordered by id."""

    def iter_columns(
        self, columns: Sequence[str], batch_size: int = 5000, *, after: str | None = None
    ) -> AsyncIterator[list[CustomerRecord]]:
        """Every customer (with an id above `after`) in id order, with only `columns` (and
        `id`, `updated_at`)."""

    def iter_updated_since(
        self, since: datetime, batch_size: int = 500
    ) -> AsyncIterator[list[CustomerRecord]]:
        """Customers whose `updated_at` is at or after `since`, in batches, in no set order
        (one read of the table: it need not have an index on `updated_at`)."""

    async def change_horizon(self) -> int | None:
        """A commit-ordered position: every change below it has committed or rolled back, so
        a reader that advances only up to it never skips a change committed later. None
        when the store has none (then changes are found by `updated_at`)."""

    def iter_written_between(
        self, start: int, end: int, batch_size: int = 500
    ) -> AsyncIterator[list[CustomerRecord]]:
        """Customers last written at positions in [start, end) (two `change_horizon`s), in
        batches."""


# A UUID's canonical text, which `str(uuid.UUID(...))` gives back unchanged.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_id(value: str) -> str:
    """A customer id in its canonical UUID text form; ValueError when it is not a UUID.
    Ids come canonical nearly always (asked a few times per customer and batch): those are
    matched, not parsed (a fifth of the cost)."""
    text = str(value)
    if _CANONICAL_UUID.fullmatch(text):
        return text
    return str(uuid.UUID(text))


def _decode(row: Mapping[Any, Any]) -> CustomerRecord:
    record = dict(row)
    record["id"] = str(record["id"])
    for column in JSON_COLUMNS:
        if column not in record:  # a scan of a few columns (`iter_columns`)
            continue
        value = record.get(column)
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else None
        record[column] = value if isinstance(value, dict) else {}
    return record


def _set_path(document: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = document
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


class SqlWarpConnector:
    """Reads and writes `WARP_CUSTOMERS_TABLE` on PostgreSQL or SQLite."""

    def __init__(self, engine: AsyncEngine, table_name: str) -> None:
        self.engine = engine
        self.table: Table = customers_table(table_name)
        self._by_ids = postgres_sql(select(self.table).where(any_param(self.table.c.id, "ids")))

    async def fetch_customers(self, ids: Sequence[str]) -> dict[str, CustomerRecord]:
        wanted = _valid_ids(ids)
        if not wanted:
            return {}
        async with self.engine.connect() as connection:
            if connection.dialect.name == "postgresql":  # a batch's hundred: from asyncpg
                found = await self._by_ids.fetch(connection, ids=wanted)
                return {str(row["id"]): _decode(row) for row in found}
            rows = await connection.execute(
                select(self.table).where(any_of(connection, self.table.c.id, wanted))
            )
            return {str(row.id): _decode(row._mapping) for row in rows}

    async def fetch_customers_by_ban(self, bans: Sequence[str]) -> dict[str, CustomerRecord]:
        """Looked up as normalised (`normalize_ban`) and keyed so; an unusable ban matches
        nothing. WARP's own column is matched as stored (its index serves the lookup): WARP
        is the record of the number."""
        wanted = sorted({ban for value in bans if (ban := usable_ban(value)) is not None})
        if not wanted:
            return {}
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(self.table).where(self.table.c.ban.in_(wanted)))
            return {normalize_ban(row.ban) or row.ban: _decode(row._mapping) for row in rows}

    async def existing_ids(self, ids: Sequence[str]) -> set[str]:
        wanted = _valid_ids(ids)
        if not wanted:
            return set()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(self.table.c.id).where(any_of(connection, self.table.c.id, wanted))
            )
            return {str(row.id) for row in rows}

    async def write_fields(
        self, customer_id: str, fields: Mapping[str, Any], hubspot_company_id: str | None = None
    ) -> CustomerRecord:
        async with self.engine.begin() as connection:
            current = await self._lock_row(connection, customer_id)
            values = self._new_values(current, fields, hubspot_company_id)
            if not values:
                return current
            await connection.execute(
                self.table.update().where(self.table.c.id == current["id"]).values(**values)
            )
            return {**current, **values}

    async def write_many(self, writes: Sequence[WarpWrite]) -> dict[str, WriteRefusal]:
        if not writes:
            return {}
        try:
            async with self.engine.begin() as connection:
                return await self._write_rows(connection, writes)
        except (IntegrityError, DataError):
            pass  # a row the database refuses: find it by writing each row on its own
        refusals: dict[str, WriteRefusal] = {}
        for write in writes:
            try:
                async with self.engine.begin() as connection:
                    refusals.update(await self._write_rows(connection, [write]))
            except (IntegrityError, DataError) as exc:
                refusals[write.customer_id] = WriteRefusal(Refusal.REFUSED, _database_reason(exc))
        return refusals

    async def _write_rows(
        self, connection: AsyncConnection, writes: Sequence[WarpWrite]
    ) -> dict[str, WriteRefusal]:
        refusals: dict[str, WriteRefusal] = {}
        query = select(self.table).where(
            self.table.c.id.in_([canonical_id(w.customer_id) for w in writes])
        )
        if connection.dialect.name == "postgresql":
            query = query.order_by(self.table.c.id).with_for_update()
        rows = {str(row.id): _decode(row._mapping) for row in await connection.execute(query)}
        # One statement per set of columns written: the usual batch writes the same ones.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for write in writes:
            current = rows.get(canonical_id(write.customer_id))
            if current is None:
                reason = f"customer {write.customer_id} not found in WARP"
                refusals[write.customer_id] = WriteRefusal(Refusal.MISSING, reason)
                continue
            changed = [p for p, value in write.expected.items() if _at(current, p) != value]
            if changed:
                reason = f"changed in WARP since it was read: {', '.join(sorted(changed))}"
                refusals[write.customer_id] = WriteRefusal(Refusal.CHANGED, reason)
                continue
            values = self._new_values(current, write.fields, write.hubspot_company_id)
            if values:
                groups.setdefault(tuple(sorted(values)), []).append(
                    {"_id": current["id"], **values}
                )
        for columns, params in groups.items():
            statement = (
                self.table.update()
                .where(self.table.c.id == bindparam("_id"))
                .values({column: bindparam(column) for column in columns})
            )
            await connection.execute(statement, params)
        return refusals

    def _new_values(
        self,
        current: CustomerRecord,
        fields: Mapping[str, Any],
        hubspot_company_id: str | None,
    ) -> dict[str, Any]:
        """The columns to UPDATE (JSON columns whole, other keys kept); empty = nothing."""
        values: dict[str, Any] = {}
        for path, value in fields.items():
            column, *rest = path.split(".")
            if column not in self.table.c or column in ("id", "created_at", "updated_at"):
                raise ValueError(f"WARP field {path!r} is not writable")
            if rest:
                document = values.get(column, json.loads(json.dumps(current[column] or {})))
                _set_path(document, rest, value)
                values[column] = document
            else:
                values[column] = value
        if hubspot_company_id is not None:
            external = values.get("external_ids", dict(current["external_ids"] or {}))
            external["hubspot_company_id"] = hubspot_company_id
            values["external_ids"] = external
        if values:
            values["updated_at"] = datetime.now(UTC)
        return values

    async def iter_customers(
        self, batch_size: int = 500, *, after: str | None = None
    ) -> AsyncIterator[list[CustomerRecord]]:
        while True:
            query = select(self.table).order_by(self.table.c.id).limit(batch_size)
            if after is not None:
                query = query.where(self.table.c.id > after)
            async with self.engine.connect() as connection:
                rows = [_decode(row._mapping) for row in await connection.execute(query)]
            if not rows:
                return
            yield rows
            after = rows[-1]["id"]

    async def iter_columns(
        self, columns: Sequence[str], batch_size: int = 5000, *, after: str | None = None
    ) -> AsyncIterator[list[CustomerRecord]]:
        """A whole-table scan of a few columns, for previews: reading and decoding every
        column of 100,000 rows costs several times more than the two or three a forecast
        uses. Unknown column names are left out (the caller checked them)."""
        wanted = dict.fromkeys(["id", "updated_at", *columns])
        selected = [self.table.c[name] for name in wanted if name in self.table.c]
        while True:
            query = select(*selected).order_by(self.table.c.id).limit(batch_size)
            if after is not None:
                query = query.where(self.table.c.id > after)
            async with self.engine.connect() as connection:
                rows = [_decode(row._mapping) for row in await connection.execute(query)]
            if not rows:
                return
            yield rows
            after = rows[-1]["id"]

    async def iter_updated_since(
        self, since: datetime, batch_size: int = 500
    ) -> AsyncIterator[list[CustomerRecord]]:
        # One read streamed in batches, not pages: WARP's table need not have an index on
        # `updated_at`, and without one every `ORDER BY updated_at LIMIT` page sorted the
        # whole table, so a pass over N changes read it N/500 times (a burst of 100,000
        # changes: 200 reads of the table in one pass). With an index the planner still uses
        # it. A row written again during the read is met as it was (one snapshot): its new
        # version is stamped after this pass's `until`, or on PostgreSQL written by a
        # transaction past this pass's horizon, and the next pass meets it.
        async for customers in self._stream(self.table.c.updated_at >= since, batch_size):
            yield customers

    async def change_horizon(self) -> int | None:
        """PostgreSQL: the oldest transaction id still running (64-bit, so it never wraps).
        A row's `xmin` is the transaction that wrote it; every row below this horizon is
        committed (or was rolled back), whatever its `updated_at` says. Reading `xmin` needs
        no change to WARP's table. SQLite has one writer and no such position: None."""
        if self.engine.dialect.name != "postgresql":
            return None
        async with self.engine.connect() as connection:
            version = connection.dialect.server_version_info or (0,)
            function = (
                "pg_snapshot_xmin(pg_current_snapshot())"
                if version >= (13,)
                else "txid_snapshot_xmin(txid_current_snapshot())"
            )
            horizon = await connection.scalar(text(f"SELECT ({function})::text::bigint"))
        return int(horizon)

    async def iter_written_between(
        self, start: int, end: int, batch_size: int = 500
    ) -> AsyncIterator[list[CustomerRecord]]:
        # `xmin` is 32 bits and wraps: a row's distance below `end` (mod 2**32) places it in
        # the window. A row written again during the scan is read as it was (one snapshot);
        # its new version falls in the next pass's window.
        # No index can serve `xmin`, so each pass reads the table once (sequentially).
        span = end - start
        if span <= 0:
            return
        in_window = (
            text(
                "((:end_low - (xmin::text)::bigint) % 4294967296 + 4294967296) % 4294967296"
                " BETWEEN 1 AND :span"
            ).bindparams(end_low=end % XID_WRAP, span=min(span, XID_WRAP - 1))
            if span < XID_WRAP
            else true()
        )
        # One sequential scan streamed in batches: paging by id would walk the whole primary
        # key for each page (measured: ~4 s against ~1 s for a million rows).
        async for customers in self._stream(in_window, batch_size):
            yield customers

    async def _stream(
        self, condition: ColumnElement[bool] | TextClause, batch_size: int
    ) -> AsyncIterator[list[CustomerRecord]]:
        """The rows that meet `condition`: one statement, one snapshot, in batches."""
        async with self.engine.connect() as connection:
            result = await connection.stream(
                select(self.table).where(condition).execution_options(yield_per=batch_size)
            )
            async for partition in result.partitions(batch_size):
                yield [_decode(row._mapping) for row in partition]

    async def _lock_row(self, connection: AsyncConnection, customer_id: str) -> CustomerRecord:
        query = select(self.table).where(self.table.c.id == canonical_id(customer_id))
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await connection.execute(query)).first()
        if row is None:
            raise CustomerNotFoundError(customer_id)
        return _decode(row._mapping)


def _valid_ids(ids: Sequence[str]) -> list[str]:
    valid = []
    for value in ids:
        try:
            valid.append(canonical_id(value))
        except ValueError:
            continue
    return valid


def _at(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a decoded record (None where any part is missing)."""
    node: Any = record
    for key in path.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _database_reason(exc: DBAPIError) -> str:
    """The database's own words (first line), without the driver's `<class …>: ` prefix."""
    text = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
    if text.startswith("<class"):
        text = text.split(": ", 1)[-1]
    return f"WARP refused the write: {text}"


# A row of the customers table as a record, for the other readers of WARP's table.
decode_customer = _decode
