"""What an operator asks the database: how deep the queue is and how long its oldest job has
waited, what failed, the open conflicts, how much of HubSpot's rate limit the deployment is
using, the last reconciliation and the scheduler's jobs (their last success, late or not).
One snapshot, read in a few cheap queries, shared by
`/metrics` (gauges at scrape time) and `hubsync status`.

Done jobs are not counted: they pile up until pruned, and their number says nothing an
operator acts on (the `hubsync_jobs_finished_total` counter says how many finish).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.settings import RateLimit
from app.store.models import (
    Conflict,
    RateLimitGrant,
    RateLimitPause,
    ReconciliationRun,
    WebhookEvent,
    table_of,
)
from app.store.queue.maintenance import database_now
from app.store.queue.records import (
    FAILED,
    NOTIFY_CHANNEL,
    PENDING,
    QUEUE,
    RUNNING,
    SQL_STATE,
    as_utc,
    maybe_utc,
)
from app.store.scheduled_jobs import ScheduledJobStatus, load_scheduled_jobs

LIVE_STATES = (PENDING, RUNNING, FAILED)
DIRECTIONS = ("to_hubspot", "to_warp", "both")
GRANTS = table_of(RateLimitGrant)
PAUSES = table_of(RateLimitPause)
CONFLICTS = table_of(Conflict)
RUNS = table_of(ReconciliationRun)
EVENTS = table_of(WebhookEvent)


@dataclass(frozen=True)
class RateLimitUse:
    bucket: str
    limit: int
    window_seconds: float
    # Requests counted in the current window; None where the log is in one process's memory
    # (the embedded SQLite default), not in the database.
    in_window: int | None
    paused_for_seconds: float

    @property
    def headroom(self) -> int | None:
        return None if self.in_window is None else max(0, self.limit - self.in_window)


@dataclass(frozen=True)
class LastReconciliation:
    id: int
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mode": self.mode,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "counts": self.counts,
        }


@dataclass(frozen=True)
class OperationsSnapshot:
    at: datetime
    queue: dict[tuple[str, str], int]  # (state, direction) -> jobs, for LIVE_STATES
    oldest_waiting_seconds: float  # the oldest due pending job's age; 0 when none waits
    open_conflicts: int
    failed_webhook_events: int
    rate_limits: list[RateLimitUse]
    last_reconciliation: LastReconciliation | None  # the newest run, whatever its state
    # The newest run that finished without an error; its counts say what it found (e.g.
    # `drift`), whichever categories the reconciliation writes.
    last_successful_reconciliation: LastReconciliation | None = None
    scheduled_jobs: tuple[ScheduledJobStatus, ...] = ()

    def jobs_in(self, state: str) -> int:
        return sum(count for (s, _), count in self.queue.items() if s == state)

    def to_json(self) -> dict[str, Any]:
        last = self.last_reconciliation
        return {
            "at": self.at.isoformat(),
            "queue": {
                state: {
                    "total": self.jobs_in(state),
                    **{d: self.queue.get((state, d), 0) for d in DIRECTIONS},
                }
                for state in LIVE_STATES
            },
            "oldest_waiting_seconds": round(self.oldest_waiting_seconds, 3),
            "open_conflicts": self.open_conflicts,
            "failed_webhook_events": self.failed_webhook_events,
            "rate_limits": [
                {
                    "bucket": use.bucket,
                    "limit": use.limit,
                    "window_seconds": use.window_seconds,
                    "in_window": use.in_window,
                    "headroom": use.headroom,
                    "paused_for_seconds": round(use.paused_for_seconds, 3),
                }
                for use in self.rate_limits
            ],
            "last_reconciliation": None if last is None else last.to_json(),
            "scheduled_jobs": [job.to_json() for job in self.scheduled_jobs],
        }


async def read_snapshot(
    connection: AsyncConnection, rate_limits: Mapping[str, RateLimit]
) -> OperationsSnapshot:
    now = await database_now(connection)
    rows = await connection.execute(
        select(QUEUE.c.state, QUEUE.c.direction, func.count())
        .where(QUEUE.c.state.in_([SQL_STATE[state] for state in LIVE_STATES]))
        .group_by(QUEUE.c.state, QUEUE.c.direction)
    )
    queue = {(row[0], row[1]): int(row[2]) for row in rows}
    oldest = await connection.scalar(
        select(func.min(QUEUE.c.created_at)).where(
            QUEUE.c.state == SQL_STATE[PENDING], QUEUE.c.run_at <= now
        )
    )
    conflicts = await connection.scalar(
        select(func.count()).select_from(CONFLICTS).where(CONFLICTS.c.state == "open")
    )
    failed_events = await connection.scalar(
        select(func.count()).select_from(EVENTS).where(EVENTS.c.status == "failed")
    )
    return OperationsSnapshot(
        at=now,
        queue=queue,
        oldest_waiting_seconds=(
            max(0.0, (now - as_utc(oldest)).total_seconds()) if oldest is not None else 0.0
        ),
        open_conflicts=int(conflicts or 0),
        failed_webhook_events=int(failed_events or 0),
        rate_limits=[
            await _rate_limit_use(connection, now, bucket, limit)
            for bucket, limit in rate_limits.items()
        ],
        last_reconciliation=await last_reconciliation(connection),
        last_successful_reconciliation=await last_reconciliation(connection, successful=True),
        scheduled_jobs=tuple(await load_scheduled_jobs(connection, now)),
    )


async def _rate_limit_use(
    connection: AsyncConnection, now: datetime, bucket: str, limit: RateLimit
) -> RateLimitUse:
    in_window: int | None = None
    if connection.dialect.name == "postgresql":
        since = now - timedelta(seconds=limit.window_seconds)
        in_window = int(
            await connection.scalar(
                select(func.count())
                .select_from(GRANTS)
                .where(GRANTS.c.bucket == bucket, GRANTS.c.granted_at > since)
            )
            or 0
        )
    until = await connection.scalar(select(PAUSES.c.until).where(PAUSES.c.bucket == bucket))
    paused = max(0.0, (as_utc(until) - now).total_seconds()) if until is not None else 0.0
    return RateLimitUse(bucket, limit.requests, limit.window_seconds, in_window, paused)


async def last_reconciliation(
    connection: AsyncConnection, *, successful: bool = False
) -> LastReconciliation | None:
    query = select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(1)
    if successful:
        query = query.where(RUNS.c.finished_at.is_not(None), RUNS.c.error.is_(None))
    row = (await connection.execute(query)).mappings().first()
    if row is None:
        return None
    return LastReconciliation(
        id=row["id"],
        mode=row["mode"],
        status=row["status"],
        started_at=as_utc(row["started_at"]),
        finished_at=maybe_utc(row["finished_at"]),
        counts=dict(row["counts"] or {}),
    )


async def notify_workers(engine: AsyncEngine) -> None:
    """Wake every replica's worker now (PostgreSQL LISTEN/NOTIFY), as an enqueue does; on
    SQLite the worker's poll finds the work."""
    if engine.dialect.name != "postgresql":
        return
    async with engine.begin() as connection:
        await connection.execute(select(func.pg_notify(NOTIFY_CHANNEL, "customer")))
