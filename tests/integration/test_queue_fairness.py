"""Issue 12, case 15: queue fairness. Strict priority starved priority-10 backfills under a
steady stream of urgent work, and a request merged into a retrying job reset its backoff."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.store.queue import QUEUE, QueueRepository
from app.sync.core.backoff import RetryPolicy
from app.sync.core.jobs import JobOutcome, OutcomeStatus
from tests.conftest import Database
from tests.integration.queue_support import enqueue, enqueue_keys, job, set_times

STEP = 60.0


def fair_queue(db: Database) -> QueueRepository:
    return QueueRepository(db.engine, policy=RetryPolicy(), ageing_seconds=STEP)


async def test_a_backfill_that_waited_long_enough_is_claimed_before_fresh_urgent_work(
    db: Database,
) -> None:
    queue = fair_queue(db)
    backfill, _ = await enqueue(queue, "backfill", priority=10)
    await set_times(db.engine, backfill, run_at=9.5 * STEP)  # due for nine and a half steps
    for n in range(5):
        await enqueue(queue, f"urgent-{n}", priority=1)
    await queue.age_pending()
    assert (await job(queue, backfill)).priority == 1  # one level per step waited
    [first] = await queue.claim("w", 1, 30)
    assert first.id == backfill  # as urgent as the rest now, and it has waited longest


async def test_ageing_lifts_one_level_per_step_and_never_lowers_a_priority(db: Database) -> None:
    queue = fair_queue(db)
    low, _ = await enqueue(queue, "low", priority=10)
    high, _ = await enqueue(queue, "high", priority=2)
    fresh, _ = await enqueue(queue, "fresh", priority=10)
    await set_times(db.engine, low, run_at=3.2 * STEP)
    await set_times(db.engine, high, run_at=3.2 * STEP)
    await queue.age_pending()
    await queue.age_pending()  # idempotent: the level follows from the wait, not the calls
    assert (await job(queue, low)).priority == 7
    assert (await job(queue, high)).priority == 2
    assert (await job(queue, fresh)).priority == 10


async def test_the_worker_maintenance_tick_ages_the_queue(db: Database) -> None:
    queue = fair_queue(db)
    backfill, _ = await enqueue(queue, "backfill", priority=10)
    await set_times(db.engine, backfill, run_at=4.5 * STEP)
    await queue.rescue_expired()  # what the worker's rescuer runs every few seconds
    assert (await job(queue, backfill)).priority == 6


async def test_a_request_merged_into_a_retrying_job_keeps_its_backoff(db: Database) -> None:
    queue = fair_queue(db)
    job_id, _ = await enqueue(queue, "flaky")
    [claimed] = await queue.claim("w", 1, 30)
    await queue.complete(
        "w", [JobOutcome(claimed.id, OutcomeStatus.RETRY, error="HubSpot 503", retry_after=300)]
    )
    backing_off = (await job(queue, job_id)).run_at
    assert backing_off > datetime.now(UTC) + timedelta(seconds=200)
    for _ in range(3):  # a stream of webhooks for the same company
        again, created = await enqueue(queue, "flaky", priority=1)
        assert (again, created) == (job_id, False)
    record = await job(queue, job_id)
    assert record.run_at == backing_off  # the backoff holds
    assert record.priority == 1  # the urgency is still taken
    assert await queue.claim("w", 10, 30) == []


async def test_a_request_merged_into_a_fresh_job_still_makes_it_due_now(db: Database) -> None:
    queue = fair_queue(db)
    job_id, _ = await enqueue(queue, "fresh")
    async with db.engine.begin() as connection:  # scheduled for later, never tried
        await connection.execute(
            update(QUEUE)
            .where(QUEUE.c.id == job_id)
            .values(run_at=datetime.now(UTC) + timedelta(minutes=5))
        )
    await enqueue(queue, "fresh")
    [claimed] = await queue.claim("w", 1, 30)
    assert claimed.id == job_id


async def test_lanes_claiming_a_backlog_at_once_take_full_batches(db: Database) -> None:
    """A backlog's NOTIFY wakes the lanes of every process at once. Claims that ran side by
    side each skipped the rows the others had locked, so the backlog's tail was shared out
    among many partial batches — at 2,000 customers two processes sent 25 to 32 batch writes
    where one sent 20 (bench/README.md, "Third pass"). Claims take turns: every batch is full
    but the last."""
    queue = QueueRepository(db.engine)
    keys = [f"customer-{n:04d}" for n in range(1000)]
    await enqueue_keys(queue, keys)
    batches = await asyncio.gather(*(queue.claim(f"lane-{n}", 100, 60) for n in range(16)))
    sizes = sorted((len(batch) for batch in batches), reverse=True)
    assert sum(sizes) == len(keys)
    assert sizes == [100] * 10 + [0] * 6
