"""The lists behind the operator's console, each paged by key (`before_id`: the last id of
the previous page) over an index, so a page costs the same on the millionth row as on the
first: failed jobs, open conflicts, a customer's sync history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import Conflict, SyncLog, table_of
from app.store.queue import FAILED, QUEUE, JobRecord
from app.store.sync_state import as_utc

conflicts = table_of(Conflict)
sync_log = table_of(SyncLog)

PAGE_SIZE = 50
MAX_MATCHING = 10_000  # "re-sync all that match": at most this many jobs per click


@dataclass(frozen=True)
class FailedFilter:
    """Which failed jobs: by error kind, source, a piece of the error text, one customer."""

    kind: str | None = None
    source: str | None = None
    text: str | None = None
    customer_id: str | None = None

    def conditions(self, state: str = FAILED) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = [QUEUE.c.state == state]
        if self.customer_id:
            found += [QUEUE.c.entity_type == "customer", QUEUE.c.entity_key == self.customer_id]
        if self.kind:
            found.append(QUEUE.c.last_error_kind == self.kind)
        if self.source:
            found.append(QUEUE.c.source == self.source)
        if self.text:
            found.append(QUEUE.c.last_error.contains(self.text, autoescape=True))
        return found

    def to_json(self) -> dict[str, str | None]:
        return {"kind": self.kind, "source": self.source, "text": self.text}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FailedFilter:
        """From a query string or a form: blank means any."""

        def given(name: str) -> str | None:
            value = params.get(name)
            return value.strip() or None if isinstance(value, str) else None

        return cls(kind=given("kind"), source=given("source"), text=given("text"))


async def failed_jobs(
    connection: AsyncConnection,
    where: FailedFilter,
    *,
    before_id: int | None = None,
    limit: int = PAGE_SIZE,
    state: str = FAILED,
) -> list[JobRecord]:
    query = select(QUEUE).where(*where.conditions(state)).order_by(QUEUE.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(QUEUE.c.id < before_id)
    rows = await connection.execute(query)
    return [JobRecord.from_row(row) for row in rows.mappings()]


async def jobs_page(
    connection: AsyncConnection,
    state: str,
    *,
    before_id: int | None = None,
    limit: int = PAGE_SIZE,
) -> list[JobRecord]:
    """Jobs in one state, newest first (index state, id)."""
    return await failed_jobs(
        connection, FailedFilter(), before_id=before_id, limit=limit, state=state
    )


async def failed_job_ids(
    connection: AsyncConnection, where: FailedFilter, limit: int = MAX_MATCHING
) -> list[int]:
    rows = await connection.execute(
        select(QUEUE.c.id).where(*where.conditions()).order_by(QUEUE.c.id.desc()).limit(limit)
    )
    return [row.id for row in rows]


async def failed_error_kinds(connection: AsyncConnection) -> list[str]:
    """The distinct error kinds among failed jobs (a handful), for the filter's choices."""
    rows = await connection.execute(
        select(QUEUE.c.last_error_kind)
        .where(QUEUE.c.state == FAILED, QUEUE.c.last_error_kind.is_not(None))
        .group_by(QUEUE.c.last_error_kind)
        .limit(50)
    )
    return sorted(row[0] for row in rows)


@dataclass(frozen=True)
class ConflictRow:
    id: int
    warp_customer_id: str
    hubspot_company_id: str | None
    field: str
    warp_value: str | None
    hubspot_value: str | None
    base_value: str | None
    reason: str | None
    state: str
    resolution: str | None
    resolved_value: str | None
    resolved_by: str | None
    detected_at: Any
    resolved_at: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.warp_customer_id,
            "hubspot_company_id": self.hubspot_company_id,
            "field": self.field,
            "warp_value": self.warp_value,
            "hubspot_value": self.hubspot_value,
            "base_value": self.base_value,
            "reason": self.reason,
            "state": self.state,
            "resolution": self.resolution,
            "resolved_value": self.resolved_value,
            "resolved_by": self.resolved_by,
            "detected_at": _iso(self.detected_at),
            "resolved_at": _iso(self.resolved_at),
        }


async def list_conflicts(
    connection: AsyncConnection,
    *,
    state: str = "open",
    before_id: int | None = None,
    limit: int = PAGE_SIZE,
) -> list[ConflictRow]:
    query = (
        select(conflicts)
        .where(conflicts.c.state == state)
        .order_by(conflicts.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(conflicts.c.id < before_id)
    return [ConflictRow(**row._mapping) for row in await connection.execute(query)]


async def get_conflict(connection: AsyncConnection, conflict_id: int) -> ConflictRow | None:
    row = (await connection.execute(select(conflicts).where(conflicts.c.id == conflict_id))).first()
    return ConflictRow(**row._mapping) if row is not None else None


async def customer_history(
    connection: AsyncConnection,
    customer_id: str,
    *,
    before_id: int | None = None,
    limit: int = PAGE_SIZE,
) -> list[dict[str, Any]]:
    """The customer's log, newest first (index on customer id, id)."""
    query = (
        select(sync_log)
        .where(sync_log.c.warp_customer_id == customer_id)
        .order_by(sync_log.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(sync_log.c.id < before_id)
    return [
        {
            "id": row.id,
            "at": _iso(row.created_at),
            "job_id": row.job_id,
            "source": row.source,
            "direction": row.direction,
            "outcome": row.outcome,
            "changes": row.changes or [],
            "error": row.error,
        }
        for row in await connection.execute(query)
    ]


def last_changes(history: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per field, the newest logged change in `history` (newest first): who wrote it, when."""
    latest: dict[str, dict[str, Any]] = {}
    for entry in history:
        for change in entry["changes"]:
            name = change.get("field")
            if isinstance(name, str) and name not in latest:
                latest[name] = {
                    "at": entry["at"],
                    "target": change.get("target"),
                    "source": entry["source"],
                    "job_id": entry["job_id"],
                }
    return latest


def _iso(moment: Any) -> str | None:
    value = as_utc(moment)
    return value.isoformat() if value is not None else None


async def job_log(
    connection: AsyncConnection, job_id: int, entity_type: str, entity_key: str
) -> list[dict[str, Any]]:
    """A job's lines in the sync log, oldest first: one per attempt (its outcome, the fields
    written, the error as HubSpot worded it). Found through the entity's index, then the
    job id, so it costs the same on a large log."""
    column = (
        sync_log.c.warp_customer_id if entity_type == "customer" else sync_log.c.hubspot_company_id
    )
    query = (
        select(sync_log)
        .where(column == entity_key, sync_log.c.job_id == job_id)
        .order_by(sync_log.c.id)
        .limit(PAGE_SIZE)
    )
    return [
        {
            "id": row.id,
            "at": as_utc(row.created_at),
            "source": row.source,
            "direction": row.direction,
            "outcome": row.outcome,
            "changes": row.changes or [],
            "error": row.error,
            "duration_ms": row.duration_ms,
            "customer_id": row.warp_customer_id,
            "company_id": row.hubspot_company_id,
        }
        for row in await connection.execute(query)
    ]
