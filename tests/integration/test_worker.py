"""The worker: wakes at once, never loses a job, heartbeats, stops gracefully."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from types import SimpleNamespace

from app.sync.core.jobs import ClaimedJob, JobOutcome, OutcomeStatus
from app.sync.schedule.runtime import NO_ENGINE, context_handler
from app.sync.schedule.scheduler import QueueTick
from app.sync.worker.worker import Worker
from tests.conftest import Database
from tests.integration.queue_support import enqueue, job, make_queue, set_times, wait_for_state
from tests.support import eventually


class Recorder:
    """A handler that marks every job done and remembers what it saw."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.seen: list[int] = []
        self.batches = 0

    async def __call__(self, jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        self.batches += 1
        await asyncio.sleep(self.delay)
        self.seen.extend(job.id for job in jobs)
        return [JobOutcome(job.id, OutcomeStatus.DONE) for job in jobs]


async def test_wake_processes_a_new_job_at_once(db: Database) -> None:
    queue = make_queue(db.engine)
    handler = Recorder()
    worker = Worker(queue, handler, worker_id="w", poll_interval=30)
    await worker.start()
    try:
        await asyncio.sleep(0.1)  # the worker is idle, its next poll 30 s away
        job_id, _ = await enqueue(queue, "now")
        worker.wake()
        await wait_for_state(queue, job_id, "done", within=2)
    finally:
        await worker.stop()
    assert handler.seen == [job_id]


async def test_the_poll_picks_up_work_nobody_announced(db: Database) -> None:
    queue = make_queue(db.engine)
    worker = Worker(queue, Recorder(), worker_id="w", poll_interval=0.1)
    await worker.start()
    try:
        job_id, _ = await enqueue(queue, "quiet")
        await wait_for_state(queue, job_id, "done", within=3)
    finally:
        await worker.stop()


async def test_a_handler_exception_retries_every_job_of_the_batch(db: Database) -> None:
    queue = make_queue(db.engine)

    async def explode(jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        raise ConnectionError("HubSpot unreachable")

    ids = [(await enqueue(queue, f"e{n}"))[0] for n in range(3)]
    counts = await Worker(queue, explode, worker_id="w").process_now()
    assert counts.claimed == 3
    assert counts.retried == 3
    for job_id in ids:
        record = await job(queue, job_id)
        assert record.state == "pending"
        assert record.attempts == 1
        assert record.last_error_kind == "handler_error"
        assert "ConnectionError: HubSpot unreachable" in (record.last_error or "")


async def test_a_job_the_handler_forgot_is_retried_not_lost(db: Database) -> None:
    queue = make_queue(db.engine)

    async def forgetful(jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        return [JobOutcome(jobs[0].id, OutcomeStatus.DONE)]

    first, _ = await enqueue(queue, "a")
    second, _ = await enqueue(queue, "b")
    await Worker(queue, forgetful, worker_id="w").process_now()
    assert (await job(queue, first)).state == "done"
    forgotten = await job(queue, second)
    assert (forgotten.state, forgotten.last_error_kind) == ("pending", "no_outcome")


async def test_process_now_works_through_the_due_queue_in_batches(db: Database) -> None:
    queue = make_queue(db.engine)
    async with db.engine.begin() as connection:
        await queue.enqueue_many(
            connection, "customer", [f"c{n}" for n in range(250)], source="api", direction="both"
        )
    handler = Recorder()
    counts = await Worker(queue, handler, worker_id="w", batch_size=100).process_now()
    assert counts.as_dict() == {
        "claimed": 250,
        "done": 250,
        "retried": 0,
        "failed": 0,
        "superseded": 0,
        "ignored": 0,
    }
    assert handler.batches == 3
    assert await queue.counts() == {"pending": 0, "running": 0, "done": 250, "failed": 0}


async def test_graceful_stop_lets_a_short_batch_finish(db: Database) -> None:
    queue = make_queue(db.engine)
    handler = Recorder(delay=0.3)
    worker = Worker(queue, handler, worker_id="w", poll_interval=0.05, shutdown_timeout=5)
    job_id, _ = await enqueue(queue, "finishing")
    await worker.start()
    await wait_for_state(queue, job_id, "running", within=2)
    await worker.stop()
    assert (await job(queue, job_id)).state == "done"


async def test_graceful_stop_releases_what_it_cannot_finish(db: Database) -> None:
    queue = make_queue(db.engine)
    started = asyncio.Event()

    async def stuck(jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        started.set()
        await asyncio.sleep(3600)
        return []

    ids = [(await enqueue(queue, f"s{n}"))[0] for n in range(4)]
    worker = Worker(queue, stuck, worker_id="w", poll_interval=0.05, shutdown_timeout=0.2)
    await worker.start()
    async with asyncio.timeout(3):
        await started.wait()
    await worker.stop()
    for job_id in ids:
        record = await job(queue, job_id)
        assert (record.state, record.attempts, record.locked_by) == ("pending", 0, None)
    assert await queue.counts() == {"pending": 4, "running": 0, "done": 0, "failed": 0}


async def test_a_long_batch_keeps_its_lease_by_heartbeat(db: Database) -> None:
    queue = make_queue(db.engine)
    worker = Worker(queue, Recorder(delay=2.0), worker_id="w", lease_seconds=0.6)
    job_id, _ = await enqueue(queue, "long")
    processing = asyncio.create_task(worker.process_now())
    rescued = 0
    while not processing.done():  # a zealous rescuer on another replica
        rescued += await queue.rescue_expired()
        await asyncio.sleep(0.05)
    assert rescued == 0
    assert processing.result().done == 1
    record = await job(queue, job_id)
    assert (record.state, record.attempts) == ("done", 1)


async def test_a_batch_whose_jobs_were_rescued_is_cancelled(db: Database) -> None:
    queue = make_queue(db.engine)
    cancelled = asyncio.Event()

    async def slow(jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return []

    worker = Worker(queue, slow, worker_id="w", lease_seconds=0.6)
    job_id, _ = await enqueue(queue, "hijacked")
    processing = asyncio.create_task(worker.process_now())
    await wait_for_state(queue, job_id, "running", within=2)
    await set_times(db.engine, job_id, lease_until=1)  # as if its heartbeats were lost
    assert await queue.rescue_expired() == 1
    async with asyncio.timeout(3):
        await cancelled.wait()
        counts = await processing
    assert counts.ignored == 1  # its outcome is not applied: the job is someone else's now
    assert (await job(queue, job_id)).state == "pending"


async def test_the_backstop_tick_rescues_and_prunes(db: Database) -> None:
    queue = make_queue(db.engine)
    crashed, _ = await enqueue(queue, "crashed")
    old, _ = await enqueue(queue, "old")
    await queue.claim("dead", 10, 60)
    await queue.complete("dead", [JobOutcome(old, OutcomeStatus.DONE)])
    await set_times(db.engine, crashed, lease_until=1)
    await set_times(db.engine, old, finished_at=8 * 86400)
    tick = QueueTick(queue=queue, worker=None, idempotency=None, retention=timedelta(days=7))
    await tick()
    await tick()  # idempotent: every replica fires every tick
    assert (await job(queue, crashed)).state == "pending"
    assert await queue.get(old) is None


async def test_without_a_sync_engine_jobs_fail_visibly(db: Database) -> None:
    queue = make_queue(db.engine)
    context = SimpleNamespace(job_handler=None)
    worker = Worker(queue, context_handler(context), worker_id="w")  # type: ignore[arg-type]
    job_id, _ = await enqueue(queue, "orphan")
    await worker.process_now()
    record = await job(queue, job_id)
    assert (record.state, record.last_error) == ("failed", NO_ENGINE)
    context.job_handler = Recorder()
    await queue.requeue_failed()
    await worker.process_now()
    assert (await job(queue, job_id)).state == "done"


class LaneRecorder(Recorder):
    """Also notes how many batches ran at the same time, at most."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.running = 0
        self.most_at_once = 0
        self.sizes: list[int] = []

    async def __call__(self, jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.sizes.append(len(jobs))
        try:
            return await super().__call__(jobs)
        finally:
            self.running -= 1


async def test_a_trickle_is_batched_by_one_lane_and_a_backlog_uses_every_lane(
    db: Database,
) -> None:
    queue = make_queue(db.engine)
    trickle = LaneRecorder(delay=0.2)  # a HubSpot call held back by the rate limit
    worker = Worker(queue, trickle, worker_id="w", batch_size=10, concurrency=3, poll_interval=0.05)
    await worker.start()
    try:
        ids = []
        for n in range(12):  # one job every 50 ms: four arrive per batch the lane works
            ids.append((await enqueue(queue, f"trickle-{n}"))[0])
            worker.wake()
            await asyncio.sleep(0.05)
        for job_id in ids:
            await wait_for_state(queue, job_id, "done", within=5)
    finally:
        await worker.stop()
    assert trickle.most_at_once == 1, "helper lanes took part in a trickle"
    assert max(trickle.sizes) > 1, "jobs that waited were not batched"

    backlog = LaneRecorder(delay=0.2)
    for n in range(60):
        await enqueue(queue, f"backlog-{n}")
    worker = Worker(
        queue, backlog, worker_id="w2", batch_size=10, concurrency=3, poll_interval=0.05
    )
    await worker.start()

    async def all_seen() -> bool:
        return len(backlog.seen) == 60

    try:
        await eventually(all_seen, timeout=10)
    finally:
        await worker.stop()
    assert len(backlog.seen) == 60
    assert backlog.most_at_once == 3, "a backlog should bring in every lane"
