"""Every job the service schedules is awaited by the real scheduler (APScheduler 3 only
awaits coroutine functions; an object with `async def __call__` goes to its thread pool and
its coroutine is dropped), and each run is recorded where every replica can see it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import iscoroutinefunction_partial

from app.hubspot.models import CompanyPage, SearchPage
from app.main import create_app
from app.settings import Settings
from app.store import reconciliation as runs
from app.store.queue import QueueRepository
from app.store.scheduled_jobs import ScheduledJobStatus, load_scheduled_jobs
from app.sync.reconcile.schedule import DAILY_JOB_ID, DailyRun, Housekeeping
from app.sync.reconcile.service import Reconciler
from app.sync.schedule.registry import JobBook, NotACoroutineError, schedule_job
from app.sync.schedule.scheduler import build_scheduler
from app.warp.connector import SqlWarpConnector
from tests.conftest import Database
from tests.support import eventually, running_service

SERVICE_JOBS = {
    "queue-maintenance",
    "history-pruning",
    "reconciliation-daily",
    "reconciliation-takeover",
    "reconciliation-catchup",
    "reconciliation-prune",
}


async def jobs_of(db: Database) -> dict[str, ScheduledJobStatus]:
    async with db.engine.connect() as connection:
        found = await load_scheduled_jobs(connection, datetime.now(UTC))
    return {job.job: job for job in found}


@pytest.fixture
async def scheduler() -> AsyncIterator[Any]:
    scheduler = build_scheduler()
    scheduler.start()
    yield scheduler
    scheduler.shutdown(wait=False)


async def test_every_job_of_the_running_service_is_a_coroutine_function(db: Database) -> None:
    settings = Settings.from_mapping(
        {**db.env, "HUBSYNC_WORKER": "false", "HUBSYNC_DEMO_DATA": "false"}
    )
    async with running_service(create_app(settings)) as (_, context):
        jobs = context.scheduler.get_jobs()
        assert {job.id for job in jobs} >= SERVICE_JOBS
        not_awaited = [job.id for job in jobs if not iscoroutinefunction_partial(job.func)]
        assert not_awaited == []


async def test_the_running_service_runs_every_job_and_records_it(db: Database) -> None:
    settings = Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_DEMO_DATA": "false",
            "HUBSYNC_QUEUE_TICK_INTERVAL": "1",
            "HUBSYNC_PRUNE_INTERVAL": "1",
            "HUBSYNC_CATCHUP_INTERVAL": "1",
            "HUBSYNC_RECONCILE_LEASE": "2",
        }
    )
    async with running_service(create_app(settings)):

        async def all_ran() -> dict[str, ScheduledJobStatus] | None:
            jobs = await jobs_of(db)
            ran = {job for job, status in jobs.items() if status.last_outcome == "ok"}
            return jobs if ran >= SERVICE_JOBS - {DAILY_JOB_ID} else None

        jobs = await eventually(all_ran, timeout=15)
    for job in SERVICE_JOBS - {DAILY_JOB_ID}:
        status = jobs[job]
        assert status.ran_by, job
        assert status.last_success_at is not None
        assert status.last_started_at is not None
        assert status.last_finished_at is not None
        assert status.last_started_at <= status.last_finished_at
        assert status.next_fire_at is not None
        assert status.late is False
    daily = jobs[DAILY_JOB_ID]  # 03:00 UTC: registered, with its trigger and next fire time
    assert daily.trigger == "cron 0 3 * * * (UTC)"
    assert daily.next_fire_at is not None
    assert (daily.next_fire_at.hour, daily.next_fire_at.minute) == (3, 0)
    assert daily.period_seconds == 86400


async def test_the_scheduler_awaits_an_object_with_an_async_call(
    db: Database, scheduler: Any
) -> None:
    ran = asyncio.Event()

    class Task:
        async def __call__(self) -> None:
            ran.set()

    book = JobBook(db.engine, replica="replica-a")
    await schedule_job(
        scheduler, "test-job", "a test", IntervalTrigger(seconds=0.1), Task(), book=book
    )
    await asyncio.wait_for(ran.wait(), timeout=5)
    status = await eventually(lambda: _ran(db, "test-job"))
    assert (status.last_outcome, status.ran_by) == ("ok", "replica-a")
    assert status.trigger == "every 0.1 s"


async def _ran(db: Database, job: str) -> ScheduledJobStatus | None:
    status = (await jobs_of(db)).get(job)
    return status if status is not None and status.last_outcome is not None else None


async def test_a_failing_job_is_recorded_with_its_error(db: Database, scheduler: Any) -> None:
    async def broken() -> None:
        raise RuntimeError("the disk is full")

    book = JobBook(db.engine, replica="replica-a")
    await schedule_job(
        scheduler, "broken", "fails", IntervalTrigger(seconds=0.1), broken, book=book
    )
    status = await eventually(lambda: _ran(db, "broken"))
    assert status.last_outcome == "error"
    assert status.last_error == "RuntimeError: the disk is full"
    assert status.last_success_at is None
    assert scheduler.get_job("broken") is not None  # it fires again


def plain() -> None:
    """A function APScheduler would run in a thread."""


async def coroutine_body() -> None:
    """What a sync wrapper would return unawaited."""


@pytest.mark.parametrize(
    "run",
    [plain, lambda: coroutine_body(), object()],  # noqa: PLW0108 -- a sync callable on purpose
    ids=["function", "lambda-returning-coroutine", "not-callable"],
)
async def test_what_the_scheduler_would_not_await_cannot_be_scheduled(
    scheduler: Any, run: object
) -> None:
    with pytest.raises(NotACoroutineError, match="not a coroutine function"):
        await schedule_job(scheduler, "not-awaited", "never", IntervalTrigger(seconds=1), run)
    assert scheduler.get_job("not-awaited") is None


class NoHubSpot:
    async def list_companies_page(self, properties: Any, after: Any = None) -> Any:
        return CompanyPage([], None)

    async def batch_read_companies(self, ids: Any, properties: Any, id_property: Any = None) -> Any:
        raise AssertionError("no linked companies here")

    async def search_companies(self, *args: Any, **kwargs: Any) -> Any:
        return SearchPage([], 0, None)


def reconciler(db: Database, owner: str) -> Reconciler:
    warp = SqlWarpConnector(db.engine, db.customers_table)
    return Reconciler(db.engine, warp, NoHubSpot(), QueueRepository(db.engine), owner=owner)


async def test_the_scheduler_runs_the_daily_run_at_its_fire_time(
    db: Database, scheduler: Any
) -> None:
    every_second = CronTrigger(second="*", timezone=UTC)
    book = JobBook(db.engine, replica="replica-a")
    replica = reconciler(db, "replica-a")
    daily = DailyRun(replica, every_second, "dry_run", book=book)
    await schedule_job(scheduler, DAILY_JOB_ID, "daily", every_second, daily, book=book)
    try:
        status = await eventually(lambda: _ran(db, DAILY_JOB_ID))
    finally:
        scheduler.remove_job(DAILY_JOB_ID)
        await replica.stop()
    assert status.last_outcome == "ok"
    assert status.note is not None
    async with db.engine.connect() as connection:
        made = await runs.list_runs(connection, limit=10)
    assert [run.trigger for run in made] == ["schedule"]
    assert status.note == f"run {made[0].id} for {made[0].fire_key}"


async def test_a_daily_run_that_meets_a_run_in_progress_is_postponed_then_started(
    db: Database,
) -> None:
    trigger = CronTrigger.from_crontab("0 3 * * *", timezone=UTC)
    fired = datetime(2026, 11, 29, 3, 0, 0, 40_000, tzinfo=UTC)
    replica = reconciler(db, "replica-a")
    book = JobBook(db.engine, replica="replica-a")
    scheduler = build_scheduler()  # not started: registration only, the test fires the jobs
    daily = DailyRun(replica, trigger, "dry_run", lambda: fired, book=book)
    await schedule_job(scheduler, DAILY_JOB_ID, "daily", trigger, daily, book=book)
    housekeeping = Housekeeping(replica, timedelta(days=90), daily)
    operator = await runs.start_run(
        db.engine, mode="dry_run", trigger="api", owner="operator", lease_seconds=600
    )
    assert operator is not None

    await scheduler.get_job(DAILY_JOB_ID).func()
    status = (await jobs_of(db))[DAILY_JOB_ID]
    assert status.last_outcome == "postponed"
    assert status.note == (
        f"schedule:2026-11-29T03:00:00+00:00 waits for run {operator.id} (api) in progress"
    )
    assert status.pending_fire_key == "schedule:2026-11-29T03:00:00+00:00"
    await housekeeping.take_over()  # still running: still postponed
    assert (await jobs_of(db))[DAILY_JOB_ID].pending_fire_key is not None

    await runs.finish_run(db.engine, operator.id, "operator", status="done")
    await housekeeping.take_over()
    async with db.engine.connect() as connection:
        started = await runs.run_for_fire_key(connection, "schedule:2026-11-29T03:00:00+00:00")
    assert started is not None
    assert started.trigger == "schedule"
    await replica.wait(started.id)
    status = (await jobs_of(db))[DAILY_JOB_ID]
    assert (status.last_outcome, status.pending_fire_key) == ("ok", None)
    assert status.note is not None
    assert f"run {started.id}" in status.note
    await housekeeping.take_over()  # nothing postponed any more: no second run
    async with db.engine.connect() as connection:
        assert len(await runs.list_runs(connection, limit=10)) == 2
