"""The reconciliation's jobs on the in-process scheduler (every replica adds them).

- the daily run at `HUBSYNC_RECONCILE_CRON` (UTC): every replica fires, the run row's unique
  `fire_key` (the fire time) lets exactly one of them start it;
- a takeover check every lease: a run whose owner stopped renewing is resumed here;
- the catch-up every `HUBSYNC_CATCHUP_INTERVAL` (one replica per pass, by its lease);
- pruning of reports past `HUBSYNC_RECONCILE_RETENTION`, hourly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from app.store.reconciliation import prune_runs
from app.sync.reconcile.catchup import CatchUp
from app.sync.reconcile.service import Reconciler

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

    async def __call__(self) -> None:
        key = fire_key(self.trigger, self.clock())
        record = await self.reconciler.start(self.mode, "schedule", fire_key=key)
        if record is None:
            log.info("scheduled reconciliation %s: another replica runs it (or a run is on)", key)
        else:
            log.info("scheduled reconciliation %s: run %d started here", key, record.id)


@dataclass
class Housekeeping:
    reconciler: Reconciler
    retention: timedelta

    async def take_over(self) -> None:
        await self.reconciler.resume_dead_run()

    async def prune(self) -> None:
        pruned = await prune_runs(self.reconciler.engine, self.retention)
        if pruned:
            log.info("pruned %d reconciliation report(s) older than %s", pruned, self.retention)


def schedule_reconciliation(
    scheduler: AsyncIOScheduler,
    reconciler: Reconciler,
    *,
    cron: str | None,
    mode: str,
    catchup: CatchUp | None,
    catchup_interval: float | None,
    retention: timedelta,
) -> None:
    if cron:
        trigger = CronTrigger.from_crontab(cron, timezone=UTC)
        scheduler.add_job(
            DailyRun(reconciler, trigger, mode),
            trigger,
            id=DAILY_JOB_ID,
            name="the daily full reconciliation",
            replace_existing=True,
            misfire_grace_time=3600,
        )
    housekeeping = Housekeeping(reconciler, retention)
    scheduler.add_job(
        housekeeping.take_over,
        IntervalTrigger(seconds=max(reconciler.lease_seconds / 2, 1.0), timezone=UTC),
        id=TAKEOVER_JOB_ID,
        name="resume a reconciliation whose process died",
        replace_existing=True,
    )
    scheduler.add_job(
        housekeeping.prune,
        IntervalTrigger(hours=1, timezone=UTC),
        id=PRUNE_JOB_ID,
        name="prune old reconciliation reports",
        replace_existing=True,
    )
    if catchup is not None and catchup_interval:

        async def run_catchup() -> None:
            # APScheduler 3 awaits only coroutine *functions*: handed the CatchUp object (an
            # async __call__), it would run it in a thread and drop the coroutine unawaited.
            await catchup()

        scheduler.add_job(
            run_catchup,
            IntervalTrigger(seconds=catchup_interval, timezone=UTC),
            id=CATCHUP_JOB_ID,
            name="queue what changed on either side since the last catch-up",
            replace_existing=True,
        )
