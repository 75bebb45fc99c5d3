"""The one way to put work on the scheduler: `schedule_job`.

APScheduler 3 awaits a job only when it is a coroutine *function* (an `async def`, a bound
`async def` method, or a partial of one). Anything else goes to its thread pool; an object
with `async def __call__` is called there, and the coroutine it returns is dropped unawaited,
with nothing but a RuntimeWarning to show for it. So `schedule_job` accepts a coroutine
function, wraps an object whose `__call__` is one in an `async def`, and refuses anything
else (`NotACoroutineError`). What it hands APScheduler is always its own `async def`, which
also records each run in `hubsync_scheduled_jobs` (app/store/scheduled_jobs.py) and logs the
job with its trigger as it is scheduled.

A job says how it went by what it returns: nothing (or any other value) is `ok`; a
`JobResult` says `skipped` or `postponed`, with a note; an exception is `error`, logged and
recorded, and the scheduler goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import iscoroutinefunction_partial
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import HubsyncError
from app.store import scheduled_jobs as records
from app.store.scheduled_jobs import ERROR, OK

log = logging.getLogger("hubsync.scheduler")

# How long a stopping service lets its scheduled jobs' runs in progress finish.
STOP_GRACE_SECONDS = 10.0
# The runs in progress of each scheduler's jobs (`stop_scheduler` waits for them).
_RUNNING: weakref.WeakKeyDictionary[Any, set[asyncio.Task[Any]]] = weakref.WeakKeyDictionary()

JobRun = Callable[[], Awaitable[object]]


class NotACoroutineError(HubsyncError, TypeError):
    def __init__(self, job_id: str, run: object) -> None:
        super().__init__(
            f"scheduled job {job_id!r}: {run!r} is not a coroutine function (nor an object "
            "with an async __call__); APScheduler would run it in a thread and never await it"
        )


@dataclass(frozen=True)
class JobResult:
    """What a job returns when it did not simply succeed: `skipped` or `postponed`."""

    outcome: str
    note: str | None = None


def replica_name() -> str:
    """Which replica ran a job, as an operator can find it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class JobBook:
    """Where each replica writes its scheduled jobs' runs (the database, shared)."""

    engine: AsyncEngine
    replica: str = field(default_factory=replica_name)

    async def register(
        self, job_id: str, name: str, trigger: BaseTrigger, next_fire: datetime | None
    ) -> None:
        await records.register_job(
            self.engine,
            job_id,
            name=name,
            trigger=describe_trigger(trigger),
            period_seconds=period_of(trigger),
            next_fire_at=next_fire,
        )

    async def forget(self, job_id: str) -> None:
        await records.forget_job(self.engine, job_id)

    async def record(
        self,
        job_id: str,
        *,
        started: datetime,
        outcome: str,
        next_fire: datetime | None,
        error: str | None = None,
        note: str | None = None,
    ) -> None:
        try:
            await records.record_run(
                self.engine,
                job_id,
                started_at=started,
                finished_at=datetime.now(UTC),
                outcome=outcome,
                ran_by=self.replica,
                next_fire_at=next_fire,
                error=error,
                note=note,
            )
        except Exception as exc:  # noqa: BLE001 -- the job ran; a lost record is only logged
            log.warning(
                "scheduled job %s: could not record its run: %s", job_id, type(exc).__name__
            )


def coroutine_function(job_id: str, run: object) -> JobRun:
    """`run` itself when APScheduler would await it; an `async def` around an object whose
    `__call__` is a coroutine function; otherwise NotACoroutineError."""
    if iscoroutinefunction_partial(run):
        return run  # type: ignore[return-value]  # checked just above
    call = getattr(type(run), "__call__", None)  # noqa: B004 -- the class's, not the instance's
    if call is not None and inspect.iscoroutinefunction(call) and callable(run):

        async def call_object() -> object:
            return await run()

        return call_object
    raise NotACoroutineError(job_id, run)


def describe_trigger(trigger: BaseTrigger) -> str:
    if isinstance(trigger, IntervalTrigger):
        return f"every {trigger.interval_length:g} s"
    if isinstance(trigger, CronTrigger):
        fields = {f.name: str(f) for f in trigger.fields}
        line = " ".join(fields[name] for name in ("minute", "hour", "day", "month", "day_of_week"))
        return f"cron {line} ({trigger.timezone})"
    return str(trigger)


def period_of(trigger: BaseTrigger, now: datetime | None = None) -> float:
    """The time between two fires, for saying when a job is late."""
    if isinstance(trigger, IntervalTrigger):
        return float(trigger.interval_length)
    moment = now or datetime.now(UTC)
    first: datetime | None = trigger.get_next_fire_time(None, moment)
    second: datetime | None = (
        trigger.get_next_fire_time(first, first + timedelta(microseconds=1)) if first else None
    )
    if first is None or second is None:
        return 86400.0
    return (second - first).total_seconds()


def next_fire(scheduler: Any, job_id: str, trigger: BaseTrigger) -> datetime | None:
    job = scheduler.get_job(job_id)
    moment = getattr(job, "next_run_time", None) if job is not None else None
    if moment is None:
        moment = trigger.get_next_fire_time(None, datetime.now(UTC))
    return moment.astimezone(UTC) if moment is not None else None


async def schedule_job(
    scheduler: Any,
    job_id: str,
    name: str,
    trigger: BaseTrigger,
    run: object,
    *,
    book: JobBook | None = None,
    **options: Any,
) -> None:
    """Add `run` to `scheduler` as `job_id`, awaited on the scheduler's event loop, each run
    recorded in `book`. Options go to APScheduler's `add_job` (e.g. misfire_grace_time)."""
    work = coroutine_function(job_id, run)

    async def run_and_record() -> None:
        task = asyncio.current_task()
        running = _RUNNING.setdefault(scheduler, set())
        if task is not None:
            running.add(task)
        try:
            await _run_and_record()
        finally:
            running.discard(task)

    async def _run_and_record() -> None:
        started = datetime.now(UTC)
        error = note = None
        try:
            result = await work()
        except Exception as exc:
            log.exception("scheduled job %s failed", job_id)
            outcome, error = ERROR, f"{type(exc).__name__}: {exc}"
        else:
            outcome = result.outcome if isinstance(result, JobResult) else OK
            note = result.note if isinstance(result, JobResult) else None
        if book is not None:
            await book.record(
                job_id,
                started=started,
                outcome=outcome,
                next_fire=next_fire(scheduler, job_id, trigger),
                error=error,
                note=note,
            )

    run_and_record.__qualname__ = run_and_record.__name__ = f"scheduled_{job_id}"
    if not iscoroutinefunction_partial(run_and_record):  # what APScheduler itself asks
        raise NotACoroutineError(job_id, run_and_record)
    scheduler.add_job(
        run_and_record, trigger, id=job_id, name=name, replace_existing=True, **options
    )
    fires = next_fire(scheduler, job_id, trigger)
    log.info(
        "scheduled job %s (%s), %s; next at %s",
        job_id,
        describe_trigger(trigger),
        name,
        fires.isoformat() if fires else "never",
    )
    if book is not None:
        await book.register(job_id, name, trigger, fires)


async def stop_scheduler(scheduler: Any, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """Stop `scheduler` without cutting a run short where it can be helped: no new fires, the
    runs in progress given `grace_seconds` to finish (each records itself), then the scheduler
    shut down, which cancels what is still running. A run cancelled in the middle of a COMMIT
    leaves its outcome unknown to itself and its connection to the garbage collector."""
    if scheduler.running:
        scheduler.pause()
    running = [task for task in _RUNNING.get(scheduler, ()) if not task.done()]
    if running:
        _, late = await asyncio.wait(running, timeout=grace_seconds)
        if late:
            log.warning(
                "%d scheduled job run(s) still going after %.0f s: cancelled",
                len(late),
                grace_seconds,
            )
    scheduler.shutdown(wait=False)
