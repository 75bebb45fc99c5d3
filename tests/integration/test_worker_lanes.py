"""The worker's lanes follow the HubSpot budget: as many batches in flight as fill the limit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from app.sync.lanes import START_LANES
from app.sync.worker import Worker
from tests.conftest import Database
from tests.integration.queue_support import enqueue, make_queue, wait_for_state
from tests.integration.test_worker import LaneRecorder
from tests.support import eventually

JOBS = 160


@dataclass
class FakeBudget:
    waiting: int = 0
    used_share: float = 0.0


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
