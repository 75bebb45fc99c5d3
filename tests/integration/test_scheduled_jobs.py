"""Every job the service schedules is awaited by the real scheduler (APScheduler 3 only
awaits coroutine functions; an object with `async def __call__` goes to its thread pool and
its coroutine is dropped), and each run is recorded where every replica can see it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import iscoroutinefunction_partial
from sqlalchemy import update

from app.cli.status import format_status, read_status
from app.hubspot.models import CompanyPage, SearchPage
from app.hubspot.ratelimit import LocalRateLimiter
from app.main import create_app
from app.settings import RateLimit, Settings
from app.store import reconciliation as runs
from app.store import scheduled_jobs as records
from app.store.models import ScheduledJobRecord
from app.store.queue import QueueRepository
from app.store.scheduled_jobs import ScheduledJobStatus, load_scheduled_jobs
from app.sync.reconcile.schedule import DAILY_JOB_ID, DailyRun, Housekeeping
from app.sync.reconcile.service import Reconciler
from app.sync.schedule.registry import (
    JobBook,
    NotACoroutineError,
    schedule_job,
    stop_scheduler,
)
from app.sync.schedule.scheduler import build_scheduler
from app.warp.connector import SqlWarpConnector
from tests.conftest import Database
from tests.integration.admin_support import API_TOKEN, admin_settings, sign_in
from tests.metrics_support import parse_exposition, total
from tests.support import eventually, running_service

SERVICE_JOBS = {
    "queue-maintenance",
    "history-pruning",
    "minute-samples",
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
    await stop_scheduler(scheduler)  # a run in progress finishes, not cut mid-COMMIT


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

    off = {**db.env, "HUBSYNC_WORKER": "false", "HUBSYNC_DEMO_DATA": "false"}
    off |= {"HUBSYNC_RECONCILE_CRON": "", "HUBSYNC_CATCHUP_INTERVAL": "0"}
    async with running_service(create_app(Settings.from_mapping(off))):
        listed = set(await jobs_of(db))
    assert listed == SERVICE_JOBS - {DAILY_JOB_ID, "reconciliation-catchup"}


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
    limiter = LocalRateLimiter(RateLimit(100, 10))

    async def list_companies_page(self, properties: Any, after: Any = None, **_: Any) -> Any:
        return CompanyPage([], None)

    async def batch_read_companies(self, ids: Any, properties: Any, id_property: Any = None) -> Any:
        raise AssertionError("no linked companies here")

    async def search_companies(self, *args: Any, **kwargs: Any) -> Any:
        return SearchPage([], 0, None)


def reconciler(db: Database, owner: str) -> Reconciler:
    warp = SqlWarpConnector(db.engine, db.customers_table)
    return Reconciler(db.engine, warp, NoHubSpot(), QueueRepository(db.engine), owner=owner)


@pytest.mark.slow  # timing-sensitive: runs alone in make test-all, not beside other workers
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
    # A fire each second: on a slow machine another may come before the job is removed. Each
    # fire time makes at most one run, every run is the schedule's, and the note names one.
    assert made
    assert all(run.trigger == "schedule" for run in made)
    assert len({run.fire_key for run in made}) == len(made)
    assert status.note in {f"run {run.id} for {run.fire_key}" for run in made}


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


# -- visible: status, dashboard, console, /metrics ---------------------------------------------


async def record_history(db: Database) -> datetime:
    """Three jobs as replicas left them: the queue tick last succeeded 10 minutes ago (period
    60 s: late), the history pruning a minute ago (period 600 s), the catch-up failed."""
    now = datetime.now(UTC)
    book_a, book_b = JobBook(db.engine, replica="host-a:1"), JobBook(db.engine, replica="host-b:2")
    every = IntervalTrigger(seconds=60, timezone=UTC)
    await book_a.register("queue-maintenance", "the tick", every, now + timedelta(seconds=30))
    await book_a.register(
        "history-pruning", "pruning", IntervalTrigger(seconds=600, timezone=UTC), None
    )
    await book_b.register("reconciliation-catchup", "catch-up", every, None)
    table = ScheduledJobRecord.__table__
    async with db.engine.begin() as connection:
        await connection.execute(
            update(table).values(registered_at=now - timedelta(hours=1))  # type: ignore[attr-defined]
        )
    await records.record_run(
        db.engine,
        "queue-maintenance",
        started_at=now - timedelta(minutes=10, seconds=1),
        finished_at=now - timedelta(minutes=10),
        outcome="ok",
        ran_by="host-a:1",
        next_fire_at=now - timedelta(minutes=9),
    )
    await records.record_run(
        db.engine,
        "history-pruning",
        started_at=now - timedelta(minutes=1, seconds=1),
        finished_at=now - timedelta(minutes=1),
        outcome="ok",
        ran_by="host-b:2",
        next_fire_at=now + timedelta(minutes=9),
    )
    await records.record_run(
        db.engine,
        "reconciliation-catchup",
        started_at=now - timedelta(seconds=2),
        finished_at=now - timedelta(seconds=1),
        outcome="error",
        ran_by="host-b:2",
        next_fire_at=now + timedelta(seconds=59),
        error="HubSpotError: 502 from the search",
    )
    return now


async def test_status_dashboard_console_and_metrics_show_each_job_and_the_late_one(
    db: Database,
) -> None:
    now = await record_history(db)
    settings = admin_settings(db)
    async with running_service(create_app(settings)) as (client, _):
        dashboard = await client.get(
            "/v1/sync/dashboard", headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        assert dashboard.status_code == 200
        shown = {job["job"]: job for job in dashboard.json()["scheduled_jobs"]}
        assert await sign_in(client)
        page = (await client.get("/admin/")).text
        samples = parse_exposition((await client.get("/metrics")).text)
    report = await read_status(settings)

    assert {job: shown[job]["late"] for job in shown} == {
        "queue-maintenance": True,
        "history-pruning": False,
        "reconciliation-catchup": True,  # failed, never succeeded, registered an hour ago
    }
    tick = shown["queue-maintenance"]
    assert (tick["trigger"], tick["ran_by"], tick["last_outcome"]) == (
        "every 60 s",
        "host-a:1",
        "ok",
    )
    assert datetime.fromisoformat(tick["last_success_at"]) == now - timedelta(minutes=10)
    catchup = shown["reconciliation-catchup"]
    assert (catchup["last_outcome"], catchup["last_error"]) == (
        "error",
        "HubSpotError: 502 from the search",
    )
    assert catchup["last_success_at"] is None
    assert datetime.fromisoformat(shown["history-pruning"]["next_fire_at"]) == now + timedelta(
        minutes=9
    )

    assert report["scheduled_jobs"] == dashboard.json()["scheduled_jobs"]
    text = format_status(report)
    assert "scheduled:  queue-maintenance (every 60 s): last ok" in text
    assert text.count("; LATE") == 2
    assert "HubSpotError: 502 from the search" in text

    assert '<tr data-scheduled-job="queue-maintenance" class="late">' in page
    assert '<tr data-scheduled-job="history-pruning">' in page
    assert 'data-figure="late-queue-maintenance"' in page

    name = "hubsync_scheduled_job_last_success_timestamp_seconds"
    assert total(samples, name, job="queue-maintenance") == pytest.approx(
        (now - timedelta(minutes=10)).timestamp(), abs=0.001
    )
    assert total(samples, name, job="reconciliation-catchup") == 0
    assert total(samples, "hubsync_scheduled_job_late", job="queue-maintenance") == 1
    assert total(samples, "hubsync_scheduled_job_late", job="history-pruning") == 0


async def test_a_skip_does_not_hide_the_replica_that_did_the_work(db: Database) -> None:
    now = datetime.now(UTC)
    await JobBook(db.engine).register(
        "reconciliation-catchup", "catch-up", IntervalTrigger(seconds=5), None
    )
    common = {"next_fire_at": None}
    await records.record_run(
        db.engine,
        "reconciliation-catchup",
        started_at=now,
        finished_at=now + timedelta(seconds=3),
        outcome="ok",
        ran_by="winner",
        **common,
    )
    await records.record_run(  # started while the winner worked, finished before it
        db.engine,
        "reconciliation-catchup",
        started_at=now + timedelta(milliseconds=5),
        finished_at=now + timedelta(milliseconds=9),
        outcome="skipped",
        ran_by="loser",
        note="another replica has this pass",
        **common,
    )
    status = (await jobs_of(db))["reconciliation-catchup"]
    assert (status.last_outcome, status.ran_by) == ("ok", "winner")
    await records.record_run(  # a later pass nobody else did: the skip is what happened
        db.engine,
        "reconciliation-catchup",
        started_at=now + timedelta(seconds=5),
        finished_at=now + timedelta(seconds=5, milliseconds=2),
        outcome="skipped",
        ran_by="loser",
        **common,
    )
    status = (await jobs_of(db))["reconciliation-catchup"]
    assert (status.last_outcome, status.ran_by) == ("skipped", "loser")
    assert status.last_success_at == now + timedelta(seconds=3)


async def test_stopping_lets_a_run_in_progress_finish_and_cuts_one_that_overruns(
    db: Database,
) -> None:
    """A stopping service gives its scheduled runs in progress a grace period (a run cut in
    the middle of a COMMIT does not know what it did, and leaves its connection behind), and
    cancels one that runs past it."""
    book = JobBook(db.engine, replica="replica-a")
    for seconds, grace, expected in ((0.3, 10.0, ["done"]), (60.0, 0.3, [])):
        scheduler = build_scheduler()
        scheduler.start()
        started = asyncio.Event()
        finished: list[str] = []

        async def run(
            seconds: float = seconds,
            started: asyncio.Event = started,
            finished: list[str] = finished,
        ) -> None:
            started.set()
            await asyncio.sleep(seconds)
            finished.append("done")

        await schedule_job(scheduler, "slow", "slow", IntervalTrigger(seconds=0.1), run, book=book)
        await asyncio.wait_for(started.wait(), 10)
        stopping = time.monotonic()
        await stop_scheduler(scheduler, grace_seconds=grace)
        assert finished == expected
        assert time.monotonic() - stopping < min(seconds, grace) + 2
    status = (await jobs_of(db))["slow"]
    assert status.last_outcome == "ok"  # the first one's run, recorded before the stop ended
