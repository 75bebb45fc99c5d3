"""The scheduler's jobs as the deployment sees them (`hubsync_scheduled_jobs`).

Every replica fires every job (app/sync/schedule/scheduler.py) and writes each run here: its
start and end, the outcome, the error, which replica ran it and when the job fires next. So
one row per job tells the operator what the whole deployment did, whichever replica did it.

Outcomes: `ok`; `error` (the text kept); `postponed` (the daily run met a run in progress; it
starts when that run ends); `skipped` (another replica had this fire time or pass). A skip
does not overwrite a run another replica finished after the skip began: the row keeps saying
who did the work.

A job is late when it has not succeeded within twice its period (counted from when it was
first registered, until its first success): nobody in the deployment runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store.models import ScheduledJobRecord
from app.store.queue.records import as_utc, maybe_utc
from app.store.upsert import insert_for

JOBS = cast(Table, ScheduledJobRecord.__table__)

OK, ERROR, POSTPONED, SKIPPED = "ok", "error", "postponed", "skipped"
OUTCOMES = (OK, ERROR, POSTPONED, SKIPPED)
ERROR_TEXT_LIMIT = 2000


@dataclass(frozen=True)
class ScheduledJobStatus:
    job: str
    name: str
    trigger: str
    period_seconds: float
    next_fire_at: datetime | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: str | None
    last_error: str | None
    note: str | None
    ran_by: str | None
    last_success_at: datetime | None
    pending_fire_key: str | None
    registered_at: datetime
    late: bool

    def to_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment is not None else None

        return {
            "job": self.job,
            "name": self.name,
            "trigger": self.trigger,
            "period_seconds": self.period_seconds,
            "next_fire_at": iso(self.next_fire_at),
            "last_started_at": iso(self.last_started_at),
            "last_finished_at": iso(self.last_finished_at),
            "last_outcome": self.last_outcome,
            "last_error": self.last_error,
            "note": self.note,
            "ran_by": self.ran_by,
            "last_success_at": iso(self.last_success_at),
            "postponed_fire": self.pending_fire_key,
            "late": self.late,
        }


async def register_job(
    engine: AsyncEngine,
    job: str,
    *,
    name: str,
    trigger: str,
    period_seconds: float,
    next_fire_at: datetime | None,
) -> None:
    """A replica scheduled `job`: its definition and next fire time (the run history stays)."""
    values = {
        "name": name,
        "trigger": trigger,
        "period_seconds": period_seconds,
        "next_fire_at": next_fire_at,
    }
    async with engine.begin() as connection:
        await connection.execute(
            insert_for(connection, JOBS)
            .values(job=job, **values)
            .on_conflict_do_update(index_elements=["job"], set_=values)
        )


async def record_run(
    engine: AsyncEngine,
    job: str,
    *,
    started_at: datetime,
    finished_at: datetime,
    outcome: str,
    ran_by: str,
    next_fire_at: datetime | None,
    error: str | None = None,
    note: str | None = None,
) -> None:
    values: dict[str, Any] = {
        "last_started_at": started_at,
        "last_finished_at": finished_at,
        "last_outcome": outcome,
        "last_error": error[:ERROR_TEXT_LIMIT] if error is not None else None,
        "note": note,
        "ran_by": ran_by,
        "next_fire_at": next_fire_at,
    }
    if outcome == OK:
        values["last_success_at"] = finished_at
    where = [JOBS.c.job == job]
    if outcome == SKIPPED:  # keep the replica that did the work in view
        where.append(or_(JOBS.c.last_finished_at.is_(None), JOBS.c.last_finished_at < started_at))
    async with engine.begin() as connection:
        await connection.execute(update(JOBS).where(*where).values(**values))


async def forget_job(engine: AsyncEngine, job: str) -> None:
    """A job the configuration turned off: no row, so it is not shown as late forever."""
    async with engine.begin() as connection:
        await connection.execute(delete(JOBS).where(JOBS.c.job == job))


async def set_pending_fire(engine: AsyncEngine, job: str, fire_key: str | None) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(JOBS).where(JOBS.c.job == job).values(pending_fire_key=fire_key)
        )


async def pending_fire(engine: AsyncEngine, job: str) -> str | None:
    async with engine.connect() as connection:
        key = await connection.scalar(select(JOBS.c.pending_fire_key).where(JOBS.c.job == job))
    return str(key) if key is not None else None


async def clear_pending_fire(engine: AsyncEngine, job: str, fire_key: str) -> bool:
    """Take the postponed fire `fire_key` off the row; False when another replica did."""
    async with engine.begin() as connection:
        result = await connection.execute(
            update(JOBS)
            .where(JOBS.c.job == job, JOBS.c.pending_fire_key == fire_key)
            .values(pending_fire_key=None)
        )
    return bool(result.rowcount)


def is_late(
    now: datetime, period_seconds: float, last_success: datetime | None, registered: datetime
) -> bool:
    since = last_success if last_success is not None else registered
    return now - since > timedelta(seconds=2 * period_seconds)


async def load_scheduled_jobs(
    connection: AsyncConnection, now: datetime
) -> list[ScheduledJobStatus]:
    rows = (await connection.execute(select(JOBS).order_by(JOBS.c.job))).mappings()
    found = []
    for row in rows:
        success = maybe_utc(row["last_success_at"])
        registered = as_utc(row["registered_at"])
        found.append(
            ScheduledJobStatus(
                job=row["job"],
                name=row["name"],
                trigger=row["trigger"],
                period_seconds=float(row["period_seconds"]),
                next_fire_at=maybe_utc(row["next_fire_at"]),
                last_started_at=maybe_utc(row["last_started_at"]),
                last_finished_at=maybe_utc(row["last_finished_at"]),
                last_outcome=row["last_outcome"],
                last_error=row["last_error"],
                note=row["note"],
                ran_by=row["ran_by"],
                last_success_at=success,
                pending_fire_key=row["pending_fire_key"],
                registered_at=registered,
                late=is_late(now, float(row["period_seconds"]), success, registered),
            )
        )
    return found
