"""A holder that cannot renew its lease in time stops writing, and a holder whose claim is no
longer current is refused: no two holders ever write one customer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.hubspot.models import BatchResult, UpdateInput, UpsertInput
from app.store.db import create_engine
from app.store.models import EntityLink
from app.store.queue import QueueRepository
from app.sync.core.jobs import ClaimedJob, JobOutcome, OutcomeStatus
from app.sync.worker.worker import Worker
from tests.conftest import Database
from tests.integration.queue_support import enqueue, job, make_queue, set_times, wait_for_state
from tests.integration.test_queue_lifecycle import finished
from tests.syncenv import SyncEnv, rows, sync_env


@pytest.mark.postgres
async def test_a_renewal_that_hangs_cancels_the_batch_before_the_lease_ends(
    postgres_url: str,
) -> None:
    """The heartbeat's UPDATE waits behind a row lock another connection holds on the job
    row (as it would behind a stalled connection): the batch must stop before its lease
    runs out, not whenever the renewal returns."""
    database = Database("postgresql", postgres_url, _engine(postgres_url), "accounts.customers")
    try:
        queue = make_queue(database.engine)
        cancelled_at: list[datetime] = []

        async def slow(jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled_at.append(datetime.now(UTC))
                raise
            return [JobOutcome(j.id, OutcomeStatus.DONE) for j in jobs]

        worker = Worker(queue, slow, worker_id="w", lease_seconds=2.0)
        job_id, _ = await enqueue(queue, "stuck-heartbeat")
        processing = asyncio.create_task(worker.process_now())
        await wait_for_state(queue, job_id, "running", within=3)
        async with database.engine.connect() as blocker, blocker.begin():
            lease_until = await blocker.scalar(
                text("SELECT lease_until FROM hubspot_sync_queue WHERE id = :id FOR UPDATE"),
                {"id": job_id},
            )
            for _ in range(40):  # 4 s: the lease is 2 s
                if cancelled_at:
                    break
                await asyncio.sleep(0.1)
            assert cancelled_at, "the batch kept running while its lease could not be renewed"
            assert cancelled_at[0] < lease_until  # stopped before anyone could claim it
        async with asyncio.timeout(10):
            counts = await processing
        assert counts.retried == 1
        record = await job(queue, job_id)
        assert (record.state, record.last_error_kind) == ("pending", "lease_lost")
    finally:
        await database.engine.dispose()


def _engine(url: str) -> AsyncEngine:
    return create_engine(url, pool_size=5)


@pytest.fixture
async def env(db: Database) -> AsyncIterator[SyncEnv]:
    async with sync_env(db) as environment:
        yield environment


async def claim_twice(
    queue: QueueRepository, db: Database, key: str
) -> tuple[ClaimedJob, ClaimedJob]:
    """Holder A claims the job, loses its lease (it stopped heartbeating), the job is
    rescued and holder B claims it: (A's stale claim, B's current one)."""
    job_id, _ = await enqueue(queue, key)
    [stale] = await queue.claim("A", 1, 30)
    await set_times(db.engine, job_id, lease_until=1)
    assert await queue.rescue_expired() == 1
    await set_times(db.engine, job_id, run_at=1)
    [current] = await queue.claim("B", 1, 30)
    assert (stale.id, current.id) == (job_id, job_id)
    assert current.claim == stale.claim + 1
    return stale, current


async def test_a_stale_holder_writes_nothing_and_its_outcome_is_refused(env: SyncEnv) -> None:
    queue = QueueRepository(env.db.engine)
    customer_id = await env.add_customer(company_name="Fenced Ltd")
    stale, current = await claim_twice(queue, env.db, customer_id)

    [late] = await env.engine([stale])  # A wakes up and carries on with its batch
    assert (late.status, late.error_kind) == (OutcomeStatus.RETRY, "lease_lost")
    assert env.hubspot.upserts == []  # HubSpot never called
    assert env.hubspot.updates == []
    assert await rows(env.db, EntityLink, EntityLink.warp_customer_id == customer_id) == []
    summary = await queue.complete("A", [late], claims={stale.id: stale.claim})
    assert summary.ignored == 1

    [outcome] = await env.engine([current])  # B, the current holder, syncs it once
    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert len(env.hubspot.upserts) == 1
    summary = await queue.complete("B", [outcome], claims={current.id: current.claim})
    assert summary.done == 1
    assert (await job(queue, current.id)).state == "done"


async def test_the_same_holder_name_with_an_old_claim_is_refused(db: Database) -> None:
    """The token, not the holder's name, decides: a holder that lost the job and claimed it
    again under the same name cannot record the first claim's outcome."""
    queue = make_queue(db.engine)
    job_id, _ = await enqueue(queue, "same-name")
    [first] = await queue.claim("lane", 1, 30)
    await set_times(db.engine, job_id, lease_until=1)
    assert await queue.rescue_expired() == 1
    await set_times(db.engine, job_id, run_at=1)
    [second] = await queue.claim("lane", 1, 30)
    stale = JobOutcome(job_id, OutcomeStatus.FAILED, error="from the lost claim")
    summary = await queue.complete("lane", [stale], claims={job_id: first.claim})
    assert summary.ignored == 1
    assert (await job(queue, job_id)).state == "running"
    fresh = JobOutcome(job_id, OutcomeStatus.DONE)
    summary = await queue.complete("lane", [fresh], claims={job_id: second.claim})
    assert summary.done == 1


async def test_a_batch_done_under_an_old_claim_leaves_that_job_to_its_new_holder(
    db: Database,
) -> None:
    """A batch whose every job is done (the completion's one-statement path on PostgreSQL):
    the job claimed again since, under the same holder name, is left running for the new
    claim; the others are done, and the summary says which was ignored."""
    queue = make_queue(db.engine)
    moved_id, _ = await enqueue(queue, "moved")
    kept_id, _ = await enqueue(queue, "kept")
    first = {claimed.id: claimed for claimed in await queue.claim("lane", 2, 30)}
    await set_times(db.engine, moved_id, lease_until=1)
    assert await queue.rescue_expired() == 1
    await set_times(db.engine, moved_id, run_at=1)
    [second] = await queue.claim("lane", 1, 30)
    assert second.id == moved_id
    assert second.claim > first[moved_id].claim
    done = [JobOutcome(job_id, OutcomeStatus.DONE) for job_id in (moved_id, kept_id)]
    done_before = finished("done")
    summary = await queue.complete("lane", done, claims={i: c.claim for i, c in first.items()})
    assert (summary.done, summary.ignored) == (1, 1)
    assert finished("done") == done_before + 1  # counted in the metrics: the one it finished
    assert (await job(queue, kept_id)).state == "done"
    assert (await job(queue, moved_id)).state == "running"
    summary = await queue.complete("other", [done[0]], claims={moved_id: second.claim})
    assert (summary.done, summary.ignored) == (0, 1)  # another holder's name: refused too
    summary = await queue.complete("lane", [done[0]], claims={moved_id: second.claim})
    assert summary.done == 1
    record = await job(queue, moved_id)
    assert (record.state, record.locked_by, record.lease_until) == ("done", None, None)


class LosingHubSpot:
    """The sandbox's HubSpot, reached through the real client; while the engine's write is
    in flight, the holder's job is rescued and claimed by another worker (a holder paused in
    the middle of its HubSpot call)."""

    def __init__(self, env: SyncEnv, queue: QueueRepository) -> None:
        self.env = env
        self.queue = queue
        self.inner = env.hubspot
        self.taken: list[ClaimedJob] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def batch_upsert_companies(
        self, inputs: Sequence[UpsertInput], id_property: str = "warp_ban"
    ) -> BatchResult:
        result = await self.inner.batch_upsert_companies(inputs, id_property)
        async with self.env.db.engine.begin() as connection:
            await connection.execute(
                text("UPDATE hubspot_sync_queue SET lease_until = :t"),
                {"t": datetime(2000, 1, 1, tzinfo=UTC)},
            )
        await self.queue.rescue_expired()
        async with self.env.db.engine.begin() as connection:
            await connection.execute(
                text("UPDATE hubspot_sync_queue SET run_at = :t"),
                {"t": datetime(2000, 1, 1, tzinfo=UTC)},
            )
        self.taken += await self.queue.claim("B", 10, 30)
        return result


async def test_a_holder_that_loses_its_claim_during_the_hubspot_call_records_nothing(
    env: SyncEnv,
) -> None:
    queue = QueueRepository(env.db.engine)
    customer_id = await env.add_customer(company_name="Paused Ltd")
    await enqueue(queue, customer_id)
    [claimed] = await queue.claim("A", 1, 30)
    losing = LosingHubSpot(env, queue)
    env.engine.hubspot = losing  # type: ignore[assignment] -- the same port, with the pause
    [outcome] = await env.engine([claimed])
    assert [taken.id for taken in losing.taken] == [claimed.id]  # B holds it now
    assert (outcome.status, outcome.error_kind) == (OutcomeStatus.RETRY, "lease_lost")
    assert (await env.customer(customer_id))["external_ids"] == {}  # WARP not written
    assert await rows(env.db, EntityLink, EntityLink.warp_customer_id == customer_id) == []


class StealingOneHubSpot:
    """The test double's HubSpot, that lets the lease of one job (`victim`) run out during
    the batch update, where another holder ("B") claims it."""

    def __init__(self, env: SyncEnv, queue: QueueRepository, victim: int) -> None:
        self.env = env
        self.queue = queue
        self.victim = victim
        self.inner = env.hubspot
        self.taken: list[ClaimedJob] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def batch_update_companies(self, inputs: Sequence[UpdateInput]) -> BatchResult:
        result = await self.inner.batch_update_companies(inputs)
        await set_times(self.env.db.engine, self.victim, lease_until=1)
        await self.queue.rescue_expired()
        await set_times(self.env.db.engine, self.victim, run_at=1)
        self.taken += await self.queue.claim("B", 10, 30)
        return result


async def test_a_claim_lost_before_the_records_leaves_the_others_recorded_once(
    env: SyncEnv,
) -> None:
    """The records of a batch go in one statement only while every job is still held: one
    job lost meanwhile makes it write nothing, and the batch is recorded the ordinary way,
    the held job's records once, the lost one's not at all."""
    queue = QueueRepository(env.db.engine)
    kept, lost = [await env.add_customer() for _ in range(2)]
    await env.sync(kept, lost)
    before = dict(await scalars_of(env, REMEMBERED_BALANCE))
    [(logged_before, _)] = await scalars_of(env, "SELECT count(*), 0 FROM hubspot_sync_log")
    for customer_id in (kept, lost):
        await env.warp.write_fields(customer_id, {"current_balance": Decimal("42")})
        await enqueue(queue, customer_id)
    claimed = await queue.claim("A", 2, 30)
    victim = next(j for j in claimed if j.entity_key == lost)
    stealing = StealingOneHubSpot(env, queue, victim.id)
    env.engine.hubspot = stealing  # type: ignore[assignment] -- the same port, with the theft
    outcomes = {o.job_id: o for o in await env.engine(claimed)}

    assert [taken.id for taken in stealing.taken] == [victim.id]
    assert (outcomes[victim.id].status, outcomes[victim.id].error_kind) == (
        OutcomeStatus.RETRY,
        "lease_lost",
    )
    [done] = [o for o in outcomes.values() if o.job_id != victim.id]
    assert done.status is OutcomeStatus.DONE
    assert done.result is not None
    assert done.result["outcome"] == "updated"
    logged = await scalars_of(env, "SELECT job_id, outcome FROM hubspot_sync_log ORDER BY id")
    assert sorted(logged[int(str(logged_before)) :]) == sorted(
        [(done.job_id, "updated"), (victim.id, "failed")]
    )
    after = dict(await scalars_of(env, REMEMBERED_BALANCE))
    assert after[kept] != before[kept]  # what hubsync wrote to HubSpot, remembered
    assert after[lost] == before[lost]  # the lost job's holder records nothing


REMEMBERED_BALANCE = (
    "SELECT warp_customer_id, hubspot_value FROM hubspot_field_state"
    " WHERE field = 'current_balance'"
)


async def scalars_of(env: SyncEnv, query: str) -> list[tuple[object, object]]:
    async with env.db.engine.connect() as connection:
        return [(a, b) for a, b in (await connection.execute(text(query))).all()]
