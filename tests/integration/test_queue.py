"""The queue's core promises: coalescing, claim order, one worker per entity, no lost work."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from app.store.queue import QUEUE, EntityBusyError
from app.sync.core.jobs import JobDirection, JobOutcome, JobSource, OutcomeStatus
from tests.conftest import Database
from tests.integration.queue_support import CUSTOMER, enqueue, job, make_queue, rows_of, set_times


async def test_a_second_request_is_coalesced_and_raises_the_priority(db: Database) -> None:
    queue = make_queue(db.engine)
    first, created = await enqueue(queue, "cust-1", priority=5)
    again, created_again = await enqueue(queue, "cust-1", priority=2)
    later, _ = await enqueue(queue, "cust-1", priority=9)
    assert created
    assert not created_again
    assert first == again == later
    record = await job(queue, first)
    assert record.state == "pending"
    assert record.priority == 2  # the most urgent request wins; a later lax one never lowers it


async def test_coalescing_keeps_the_earliest_run_time(db: Database) -> None:
    queue = make_queue(db.engine)
    job_id, _ = await enqueue(queue, "cust-1")
    await set_times(db.engine, job_id, run_at=-60)  # a retry, due in a minute
    await enqueue(queue, "cust-1")
    record = await job(queue, job_id)
    assert record.run_at <= record.updated_at  # the fresh request made it due now


async def test_different_directions_coalesce_into_both(db: Database) -> None:
    queue = make_queue(db.engine)
    async with db.engine.begin() as connection:
        first = await queue.enqueue(
            connection, CUSTOMER, "c", source=JobSource.API, direction=JobDirection.TO_HUBSPOT
        )
        second = await queue.enqueue(
            connection, CUSTOMER, "c", source=JobSource.WEBHOOK, direction=JobDirection.TO_WARP
        )
    assert first.job_id == second.job_id
    assert (await job(queue, first.job_id)).direction == "both"


async def test_a_request_without_payload_keeps_the_waiting_jobs_payload(db: Database) -> None:
    queue = make_queue(db.engine)
    async with db.engine.begin() as connection:
        first = await queue.enqueue(
            connection, CUSTOMER, "c", source="api", direction="to_hubspot", payload={"why": "x"}
        )
        await queue.enqueue(connection, CUSTOMER, "c", source="api", direction="to_hubspot")
    assert (await job(queue, first.job_id)).payload == {"why": "x"}


async def test_a_job_exists_only_if_its_transaction_commits(db: Database) -> None:
    queue = make_queue(db.engine)
    async with db.engine.connect() as connection:
        transaction = await connection.begin()
        await queue.enqueue(connection, CUSTOMER, "ghost", source="api", direction="to_hubspot")
        await transaction.rollback()
    assert await rows_of(db.engine, "ghost") == []
    assert (await queue.counts())["pending"] == 0


async def test_concurrent_duplicate_enqueues_make_one_row(db: Database) -> None:
    queue = make_queue(db.engine)
    results = await asyncio.gather(*(enqueue(queue, "hot", priority=1 + n % 9) for n in range(20)))
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    rows = await rows_of(db.engine, "hot")
    assert len(rows) == 1
    assert rows[0].priority == 1


async def test_enqueue_many_coalesces_and_counts(db: Database) -> None:
    queue = make_queue(db.engine)
    await enqueue(queue, "k-0")
    keys = [f"k-{n}" for n in range(1200)] + ["k-5"]  # more than one chunk, one duplicate
    async with db.engine.begin() as connection:
        result = await queue.enqueue_many(
            connection, CUSTOMER, keys, priority=3, source="reconciliation", direction="both"
        )
    assert (result.created, result.coalesced) == (1199, 1)
    assert len(result.job_ids) == 1200
    assert (await queue.counts())["pending"] == 1200
    assert (await job(queue, result.job_ids["k-0"])).priority == 3


async def test_claim_takes_the_most_urgent_due_jobs_first(db: Database) -> None:
    queue = make_queue(db.engine)
    low, _ = await enqueue(queue, "low", priority=9)
    mid, _ = await enqueue(queue, "mid", priority=5)
    urgent, _ = await enqueue(queue, "urgent", priority=1)
    mid_older, _ = await enqueue(queue, "mid-older", priority=5)
    await set_times(db.engine, mid_older, run_at=30)
    later, _ = await enqueue(queue, "later", priority=1)
    await set_times(db.engine, later, run_at=-3600)  # not due for an hour
    claimed = await queue.claim("w1", 3, 60)
    assert [c.id for c in claimed] == [urgent, mid_older, mid]
    assert all(c.attempts == 1 for c in claimed)
    rest = await queue.claim("w1", 10, 60)
    assert [c.id for c in rest] == [low]


async def test_an_entity_is_never_claimed_twice_and_a_new_request_waits(db: Database) -> None:
    queue = make_queue(db.engine)
    first, _ = await enqueue(queue, "cust-1")
    [claimed] = await queue.claim("w1", 10, 60)
    # Requests while it runs make exactly one follow-up job, not lost, not duplicated.
    follow_up, created = await enqueue(queue, "cust-1")
    again, created_again = await enqueue(queue, "cust-1")
    assert created
    assert not created_again
    assert follow_up == again != first
    assert await queue.claim("w2", 10, 60) == []  # the follow-up waits for the running job
    await queue.complete("w1", [JobOutcome(claimed.id, OutcomeStatus.DONE)])
    [next_job] = await queue.claim("w2", 10, 60)
    assert next_job.id == follow_up
    states = [r.state for r in await rows_of(db.engine, "cust-1")]
    assert states == ["done", "running"]


async def test_concurrent_claimers_never_share_a_job(db: Database) -> None:
    queue = make_queue(db.engine)
    async with db.engine.begin() as connection:
        await queue.enqueue_many(
            connection, CUSTOMER, [f"e{n}" for n in range(300)], source="api", direction="both"
        )
    seen: list[int] = []

    async def claimer(name: str) -> None:
        while batch := await queue.claim(name, 7, 60):
            seen.extend(job.id for job in batch)
            await queue.complete(name, [JobOutcome(j.id, OutcomeStatus.DONE) for j in batch])

    await asyncio.gather(*(claimer(f"w{n}") for n in range(6)))
    assert len(seen) == 300
    assert len(set(seen)) == 300
    assert (await queue.counts())["done"] == 300


async def test_claim_entity_takes_the_pending_job_or_makes_one(db: Database) -> None:
    queue = make_queue(db.engine)
    pending, _ = await enqueue(queue, "a", priority=6)
    taken = await queue.claim_entity(CUSTOMER, "a", worker_id="api-1", lease_seconds=30)
    assert taken.id == pending
    assert taken.priority == 1
    made = await queue.claim_entity(CUSTOMER, "b", worker_id="api-1", lease_seconds=30)
    assert (await job(queue, made.id)).state == "running"
    with pytest.raises(EntityBusyError) as busy:
        await queue.claim_entity(CUSTOMER, "a", worker_id="api-2", lease_seconds=30)
    assert busy.value.job_id == pending
    await enqueue(queue, "a")  # a follow-up while it runs is not claimable by the workers
    assert await queue.claim("w1", 10, 30) == []


async def test_concurrent_immediate_claims_of_one_entity_admit_one(db: Database) -> None:
    queue = make_queue(db.engine)

    async def attempt(n: int) -> str:
        try:
            await queue.claim_entity(CUSTOMER, "x", worker_id=f"api-{n}", lease_seconds=30)
        except EntityBusyError:
            return "busy"
        return "won"

    results = await asyncio.gather(*(attempt(n) for n in range(8)))
    assert results.count("won") == 1
    async with db.engine.connect() as connection:
        running = await connection.scalar(
            select(func.count()).where(QUEUE.c.state == "running", QUEUE.c.entity_key == "x")
        )
    assert running == 1
