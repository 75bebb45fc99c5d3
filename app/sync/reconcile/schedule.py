"""The reconciliation's jobs on the in-process scheduler (every replica adds them).

- the daily run at `HUBSYNC_RECONCILE_CRON` (UTC): every replica fires, the run row's unique
  `fire_key` (the fire time) lets exactly one of them start it;
- a takeover check every lease: a run whose owner stopped renewing is resumed here;
- the catch-up every `HUBSYNC_CATCHUP_INTERVAL` (one replica per pass, by its lease);
- pruning of reports past `HUBSYNC_RECONCILE_RETENTION`, every `HUBSYNC_PRUNE_INTERVAL`.

A daily fire time that meets a run in progress (an operator's, or a longer run) is postponed,
not dropped: its fire key is recorded on the daily job's row (`hubsync_scheduled_jobs`) and the
takeover check, every few seconds on every replica, starts it once no run is in progress.
Fire times postponed behind the same run come to one run, named for the latest of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from app.store import reconciliation as runs
from app.store import scheduled_jobs as job_records
from app.store.reconciliation import RunRecord, prune_runs
from app.store.scheduled_jobs import OK, POSTPONED, SKIPPED
from app.sync.reconcile.catchup import CatchUp
from app.sync.reconcile.service import Reconciler
from app.sync.schedule.registry import JobBook, JobResult, schedule_job

log = logging.getLogger("hubsync.reconcile")

DAILY_JOB_ID = "reconciliation-daily"
TAKEOVER_JOB_ID = "reconciliation-takeover"
CATCHUP_JOB_ID = "reconciliation-catchup"
PRUNE_JOB_ID = "reconciliation-prune"


def fire_key(trigger: CronTrigger, now: datetime) -> str:
    """The scheduled time this firing stands for, the same on every replica: the trigger's
    latest fire time not after `now` (a replica a few seconds late still names it)."""
    moment = trigger.get_next_fire_time(None, now - timedelta(days=1, seconds=1))
    latest = moment
    while moment is not None and moment <= now:
        latest = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    assert latest is not None  # noqa: S101 -- a crontab fires at least once a day or so
    return f"schedule:{latest.astimezone(UTC).isoformat()}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def next_fire_time(cron: str | None, now: datetime) -> datetime | None:
    """When the daily run fires next (UTC), or None when no run is scheduled."""
    if not cron:
        return None
    moment = CronTrigger.from_crontab(cron, timezone=UTC).get_next_fire_time(None, now)
    return moment.astimezone(UTC) if moment is not None else None


@dataclass
class DailyRun:
    reconciler: Reconciler
    trigger: CronTrigger
    mode: str
    clock: Callable[[], datetime] = utc_now
    book: JobBook | None = None

    async def __call__(self) -> JobResult | None:
        key = fire_key(self.trigger, self.clock())
        record = await self.reconciler.start(self.mode, "schedule", fire_key=key)
        engine = self.reconciler.engine
        if record is not None:
            # This run covers any fire time still postponed behind an earlier run.
            await job_records.set_pending_fire(engine, DAILY_JOB_ID, None)
            log.info("scheduled reconciliation %s: run %d started here", key, record.id)
            return JobResult(OK, f"run {record.id} for {key}")
        async with engine.connect() as connection:
            made = await runs.run_for_fire_key(connection, key)
            running = await runs.running_run(connection)
        if made is not None:
            log.info("scheduled reconciliation %s: run %d on another replica", key, made.id)
            return JobResult(SKIPPED, f"run {made.id} for {key} started by {made.claimed_by}")
        await job_records.set_pending_fire(engine, DAILY_JOB_ID, key)
        what = f"run {running.id} ({running.trigger})" if running is not None else "a run"
        log.warning("scheduled reconciliation %s: postponed until %s ends", key, what)
        return JobResult(POSTPONED, f"{key} waits for {what} in progress")

    async def start_postponed(self) -> RunRecord | None:
        """Start the postponed fire time, if there is one and no run is in progress."""
        engine = self.reconciler.engine
        key = await job_records.pending_fire(engine, DAILY_JOB_ID)
        if key is None:
            return None
        started = self.clock()
        record = await self.reconciler.start(self.mode, "schedule", fire_key=key)
        if record is None:
            async with engine.connect() as connection:
                if await runs.run_for_fire_key(connection, key) is not None:
                    await job_records.clear_pending_fire(engine, DAILY_JOB_ID, key)
            return None
        await job_records.clear_pending_fire(engine, DAILY_JOB_ID, key)
        log.info("postponed reconciliation %s: run %d started here", key, record.id)
        if self.book is not None:
            await self.book.record(
                DAILY_JOB_ID,
                started=started,
                outcome=OK,
                next_fire=self.trigger.get_next_fire_time(None, self.clock()),
                note=f"run {record.id} for {key}, postponed until the run before it ended",
            )
        return record


@dataclass
class Housekeeping:
    reconciler: Reconciler
    retention: timedelta
    daily: DailyRun | None = None

    async def take_over(self) -> None:
        await self.reconciler.resume_dead_run()
        if self.daily is not None:
            await self.daily.start_postponed()

    async def prune(self) -> None:
        pruned = await prune_runs(self.reconciler.engine, self.retention)
        if pruned:
            log.info("pruned %d reconciliation report(s) older than %s", pruned, self.retention)


@dataclass
class ScheduledCatchUp:
    """The catch-up as a scheduled job: `skipped` when other replicas had both passes."""

    catchup: CatchUp

    async def __call__(self) -> JobResult | None:
        result = await self.catchup()
        if result.hubspot is None and result.warp is None:
            return JobResult(SKIPPED, "another replica has this pass")
        return JobResult(OK, f"queued {result.hubspot or 0} HubSpot, {result.warp or 0} WARP")


async def schedule_reconciliation(
    scheduler: AsyncIOScheduler,
    reconciler: Reconciler,
    *,
    cron: str | None,
    mode: str,
    catchup: CatchUp | None,
    catchup_interval: float | None,
    retention: timedelta,
    prune_interval: float = 3600.0,
    book: JobBook | None = None,
) -> None:
    daily = None
    if cron:
        trigger = CronTrigger.from_crontab(cron, timezone=UTC)
        daily = DailyRun(reconciler, trigger, mode, book=book)
        await schedule_job(
            scheduler,
            DAILY_JOB_ID,
            "the daily full reconciliation",
            trigger,
            daily,
            book=book,
            misfire_grace_time=3600,
        )
    elif book is not None:
        await book.forget(DAILY_JOB_ID)  # turned off: not listed (nor late) any more
    housekeeping = Housekeeping(reconciler, retention, daily)
    await schedule_job(
        scheduler,
        TAKEOVER_JOB_ID,
        "resume a reconciliation whose process died, or start a postponed daily run",
        IntervalTrigger(seconds=max(reconciler.lease_seconds / 2, 1.0), timezone=UTC),
        housekeeping.take_over,
        book=book,
    )
    await schedule_job(
        scheduler,
        PRUNE_JOB_ID,
        "prune old reconciliation reports",
        IntervalTrigger(seconds=prune_interval, timezone=UTC),
        housekeeping.prune,
        book=book,
    )
    if catchup is not None and catchup_interval:
        await schedule_job(
            scheduler,
            CATCHUP_JOB_ID,
            "queue what changed on either side since the last catch-up",
            IntervalTrigger(seconds=catchup_interval, timezone=UTC),
            ScheduledCatchUp(catchup),
            book=book,
        )
    elif book is not None:
        await book.forget(CATCHUP_JOB_ID)
