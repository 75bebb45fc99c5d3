"""What the sync queue hands out and reports: records, results and errors, plus the clock.

Kept apart from the queries (`app/store/queue/repository.py`) so callers can import the types
without the SQL, and so the one subtle thing — what "now" means — is decided in one place: on
PostgreSQL the database's clock (every replica agrees on it, so leases never depend on host
clocks), on SQLite the process's UTC clock (SQLite is one file on one host, so that is the
database's clock too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Interval, bindparam, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect, RowMapping

from app.errors import HubsyncError
from app.store.models import SyncJob, Timestamp, table_of
from app.sync.core.jobs import ClaimedJob, EntityType, JobDirection, JobSource

QUEUE = table_of(SyncJob)
NOTIFY_CHANNEL = "hubsync_queue"

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATES = (PENDING, RUNNING, DONE, FAILED)
# States as SQL literals, not bound parameters: PostgreSQL can only use the partial unique
# indexes (WHERE state = 'pending' / 'running') when the predicate is visible at plan time.
SQL_STATE: dict[str, ColumnElement[str]] = {state: literal_column(f"'{state}'") for state in STATES}
# `last_error_kind` of a job whose work was folded into another job for the same entity; as a
# literal too, for the partial index of superseded jobs (ix_hubspot_sync_queue_superseded).
SUPERSEDED = "superseded"
SQL_SUPERSEDED: ColumnElement[str] = literal_column(f"'{SUPERSEDED}'")


class Enqueued(NamedTuple):
    job_id: int
    created: bool  # False: merged into the entity's pending job (coalesced)


@dataclass(frozen=True)
class BulkEnqueued:
    created: int
    coalesced: int
    job_ids: dict[str, int] = field(default_factory=dict)  # entity key -> job id


@dataclass(frozen=True)
class CompletionSummary:
    done: int = 0
    retried: int = 0
    failed: int = 0
    superseded: int = 0  # retried, but merged into a newer pending job of the same entity
    ignored: int = 0  # outcomes for jobs this worker no longer holds (lease lost)

    def __add__(self, other: CompletionSummary) -> CompletionSummary:
        return CompletionSummary(
            self.done + other.done,
            self.retried + other.retried,
            self.failed + other.failed,
            self.superseded + other.superseded,
            self.ignored + other.ignored,
        )


@dataclass(frozen=True)
class JobRecord:
    id: int
    entity_type: str
    entity_key: str
    direction: str
    source: str
    state: str
    priority: int
    attempts: int
    run_at: datetime
    locked_by: str | None
    lease_until: datetime | None
    last_error: str | None
    last_error_kind: str | None
    payload: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: RowMapping) -> JobRecord:
        return cls(
            id=row["id"],
            entity_type=row["entity_type"],
            entity_key=row["entity_key"],
            direction=row["direction"],
            source=row["source"],
            state=row["state"],
            priority=row["priority"],
            attempts=row["attempts"],
            run_at=as_utc(row["run_at"]),
            locked_by=row["locked_by"],
            lease_until=maybe_utc(row["lease_until"]),
            last_error=row["last_error"],
            last_error_kind=row["last_error_kind"],
            payload=row["payload"],
            created_at=as_utc(row["created_at"]),
            updated_at=as_utc(row["updated_at"]),
            finished_at=maybe_utc(row["finished_at"]),
        )


class EntityBusyError(HubsyncError, RuntimeError):
    """Another worker is syncing this entity right now."""

    def __init__(self, entity_type: str, entity_key: str, job_id: int | None) -> None:
        held = f" (job {job_id})" if job_id is not None else ""
        super().__init__(f"{entity_type} {entity_key} is being synced by another worker{held}")
        self.entity_type = entity_type
        self.entity_key = entity_key
        self.job_id = job_id


# Each value's member, looked up rather than `EnumType.__call__`d: a batch claims a hundred jobs.
_ENTITY_TYPES = {member.value: member for member in EntityType}
_DIRECTIONS = {member.value: member for member in JobDirection}
_SOURCES = {member.value: member for member in JobSource}


def claimed_job(row: RowMapping) -> ClaimedJob:
    return ClaimedJob(
        id=row["id"],
        entity_type=_ENTITY_TYPES.get(row["entity_type"]) or EntityType(row["entity_type"]),
        entity_key=row["entity_key"],
        direction=_DIRECTIONS.get(row["direction"]) or JobDirection(row["direction"]),
        source=_SOURCES.get(row["source"]) or JobSource(row["source"]),
        priority=row["priority"],
        attempts=row["attempts"],
        created_at=as_utc(row["created_at"]),
        payload=dict(row["payload"] or {}),
        claim=row["claim"] or 0,
    )


# -- time ------------------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands timestamps back naive (they are stored in UTC); PostgreSQL aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def sql_now(dialect: Dialect, offset_seconds: float = 0.0) -> ColumnElement[datetime]:
    """The database's "now" (plus an offset) as an SQL expression."""
    if dialect.name == "postgresql":
        if offset_seconds:
            return func.now() + literal(timedelta(seconds=offset_seconds), Interval())
        return func.now()
    return literal(utc_now() + timedelta(seconds=offset_seconds), Timestamp)


def still_handed() -> Any:
    """The ids of the jobs a holder was handed (two array parameters in step, `ids` and
    `claims`; PostgreSQL) whose row is still running under the claim it was handed out with,
    in id order (the order every fence locks them in): the one-statement fences' first part,
    each adding its lock."""
    handed = (
        func.unnest(
            bindparam("ids", type_=ARRAY(QUEUE.c.id.type)),
            bindparam("claims", type_=ARRAY(QUEUE.c.claim.type)),
        )
        .table_valued("id", "claim")
        .render_derived(name="handed")
    )
    return (
        select(QUEUE.c.id)
        .join(handed, QUEUE.c.id == handed.c.id)
        .where(
            QUEUE.c.state == SQL_STATE[RUNNING], func.coalesce(QUEUE.c.claim, 0) == handed.c.claim
        )
        .order_by(QUEUE.c.id)
    )
