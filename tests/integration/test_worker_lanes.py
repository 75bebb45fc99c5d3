"""The worker's lanes follow the HubSpot budget: as many batches in flight as fill the limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.hubspot.ratelimit import LocalRateLimiter
from app.settings import RateLimit
from app.sync.core.jobs import ClaimedJob, JobOutcome, OutcomeStatus
from app.sync.worker.lanes import START_LANES
from app.sync.worker.worker import Worker
from tests.conftest import Database
from tests.integration.queue_support import enqueue, make_queue, wait_for_state
from tests.integration.test_worker import LaneRecorder
from tests.support import eventually

JOBS = 160


@dataclass
class FakeBudget:
    waiting: int = 0
    used_share: float = 0.0
    request_interval: float = 0.1


async def _run_backlog(db: Database, budget: FakeBudget, prefix: str) -> LaneRecorder:
    queue = make_queue(db.engine)
    for n in range(JOBS):
        await enqueue(queue, f"{prefix}-{n}")
    handler = LaneRecorder(delay=0.3)  # a HubSpot round trip
    worker = Worker(
        queue,
        handler,
        worker_id=prefix,
        batch_size=5,
        concurrency=8,
        poll_interval=0.05,
        budget=budget,
    )
    await worker.start()

    async def all_seen() -> bool:
        return len(handler.seen) == JOBS

    try:
        await eventually(all_seen, timeout=20)
    finally:
        await worker.stop()
    return handler


async def test_a_backlog_below_the_limit_grows_to_every_lane(db: Database) -> None:
    handler = await _run_backlog(db, FakeBudget(waiting=0), "room")
    # More than the lanes it starts with (all 8 when the machine keeps up; a busy one may
    # finish the backlog before the last lanes join).
    assert handler.most_at_once > START_LANES


async def test_a_backlog_at_the_limit_keeps_one_lane_busy(db: Database) -> None:
    handler = await _run_backlog(db, FakeBudget(waiting=4), "full")
    assert handler.most_at_once <= 4  # the start, then down to one as requests queue
    assert handler.sizes[-1] == 5


async def test_a_trickle_with_budget_to_spare_does_not_wait_for_a_busy_lane(
    db: Database,
) -> None:
    queue = make_queue(db.engine)
    handler = LaneRecorder(delay=0.3)
    worker = Worker(
        queue,
        handler,
        worker_id="t",
        batch_size=10,
        concurrency=4,
        poll_interval=5,  # only a wake-up brings a lane in, not the poll
        budget=FakeBudget(used_share=0.1),
    )
    await worker.start()
    try:
        ids = []
        for n in range(6):  # one job every 100 ms, each handled in 300 ms
            ids.append((await enqueue(queue, f"trickle-{n}"))[0])
            worker.wake()
            await asyncio.sleep(0.1)
        for job_id in ids:
            await wait_for_state(queue, job_id, "done", within=5)
    finally:
        await worker.stop()
    assert handler.most_at_once > 1
    assert max(handler.sizes) <= 2  # taken almost as they came, not gathered behind lane 0


class ReadThenWrite:
    """A handler that spends two requests of a real rate limiter per batch, as a first sync
    does (a batch read, then a batch write, each a 20 ms round trip), and notes when each job
    was done."""

    def __init__(self, limiter: LocalRateLimiter) -> None:
        self.limiter = limiter
        self.requests = 0
        self.done_at: dict[int, float] = {}

    async def __call__(self, jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        for _ in range(2):
            grant = await self.limiter.acquire()
            self.requests += 1
            await asyncio.sleep(0.02)
            await self.limiter.settle(grant)
        now = time.monotonic()
        self.done_at.update((job.id, now) for job in jobs)
        return [JobOutcome(job.id, OutcomeStatus.DONE) for job in jobs]


async def test_a_trickle_faster_than_the_limit_gathers_into_batches_instead_of_stalling(
    db: Database,
) -> None:
    # 20 jobs/s, each alone costing 2 requests: 40 requests/s against a limit of 10/s (40 per
    # 4 s, HubSpot's 100 per 10 s in miniature). Taken one by one, they fill the window within
    # a second and then every job waits the seconds it takes the window to drain.
    limiter = LocalRateLimiter(RateLimit(requests=40, window_seconds=4), margin_seconds=0)
    queue = make_queue(db.engine)
    handler = ReadThenWrite(limiter)
    worker = Worker(queue, handler, worker_id="pace", batch_size=100, concurrency=4, budget=limiter)
    await worker.start()
    enqueued_at: dict[int, float] = {}
    try:
        for n in range(120):
            job_id, _ = await enqueue(queue, f"pace-{n}")
            enqueued_at[job_id] = time.monotonic()
            worker.wake()
            await asyncio.sleep(0.05)

        async def all_done() -> bool:
            return len(handler.done_at) == len(enqueued_at)

        await eventually(all_done, timeout=20)
    finally:
        await worker.stop()
    waits = sorted(handler.done_at[n] - at for n, at in enqueued_at.items())
    assert waits[-1] < 1.5, f"slowest job {waits[-1]:.2f} s: it waited for the window to drain"
    assert handler.requests < 120  # gathered: fewer batches than jobs
