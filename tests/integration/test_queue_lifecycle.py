"""What happens after a claim: retries with backoff, failure, leases, rescue, requeue, prune."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from prometheus_client import REGISTRY

from app.sync.core.jobs import JobOutcome, OutcomeStatus
from tests.conftest import Database
from tests.integration.queue_support import enqueue, job, make_queue, rows_of, set_times


def finished(outcome: str) -> float:
    """`hubsync_jobs_finished_total` (to HubSpot, as these tests' jobs go) in this process."""
    labels = {"direction": "to_hubspot", "outcome": outcome}
    return REGISTRY.get_sample_value("hubsync_jobs_finished_total", labels) or 0.0


def seconds_until_run(record: object) -> float:
    run_at, updated_at = record.run_at, record.updated_at  # type: ignore[attr-defined]
    return float((run_at - updated_at).total_seconds())


async def test_transient_failures_back_off_near_1_2_4_seconds(db: Database) -> None:
    queue = make_queue(db.engine, jitter=0.2)
    job_id, _ = await enqueue(queue, "flaky")
    waits = []
    for _ in range(3):
        await set_times(db.engine, job_id, run_at=0)  # let the backoff pass
        [claimed] = await queue.claim("w1", 1, 60)
        summary = await queue.complete(
            "w1",
            [
                JobOutcome(
                    claimed.id, OutcomeStatus.RETRY, error="HubSpot 503", error_kind="http_503"
                )
            ],
        )
        assert summary.retried == 1
        record = await job(queue, job_id)
        assert record.state == "pending"
        assert record.last_error == "HubSpot 503"
        assert record.last_error_kind == "http_503"
        waits.append(seconds_until_run(record))
    for wait, nominal in zip(waits, [1.0, 2.0, 4.0], strict=True):
        assert nominal * 0.8 <= wait <= nominal * 1.2
    assert (await job(queue, job_id)).attempts == 3


async def test_retry_after_from_the_upstream_overrides_the_backoff(db: Database) -> None:
    queue = make_queue(db.engine)
    job_id, _ = await enqueue(queue, "limited")
    [claimed] = await queue.claim("w1", 1, 60)
    await queue.complete(
        "w1", [JobOutcome(claimed.id, OutcomeStatus.RETRY, error="429", retry_after=30.0)]
    )
    assert 30.0 <= seconds_until_run(await job(queue, job_id)) <= 33.5


async def test_retrying_past_the_maximum_age_fails_the_job_with_the_reason(db: Database) -> None:
    queue = make_queue(db.engine, max_age_seconds=3600)
    job_id, _ = await enqueue(queue, "hopeless")
    await set_times(db.engine, job_id, created_at=3599.5)
    [claimed] = await queue.claim("w1", 1, 60)
    summary = await queue.complete(
        "w1", [JobOutcome(claimed.id, OutcomeStatus.RETRY, error="timeout", error_kind="timeout")]
    )
    assert summary.failed == 1
    record = await job(queue, job_id)
    assert record.state == "failed"
    assert record.last_error is not None
    assert record.last_error.startswith("gave up after 1 attempts over")
    assert record.last_error.endswith("timeout")
    assert record.finished_at is not None


async def test_a_permanent_error_fails_at_once_with_its_reason(db: Database) -> None:
    queue = make_queue(db.engine)
    job_id, _ = await enqueue(queue, "invalid")
    [claimed] = await queue.claim("w1", 1, 60)
    reason = "HubSpot 400: Property values were not valid: warp_credit_limit"
    await queue.complete(
        "w1", [JobOutcome(claimed.id, OutcomeStatus.FAILED, error=reason, error_kind="validation")]
    )
    record = await job(queue, job_id)
    assert (record.state, record.last_error, record.last_error_kind) == (
        "failed",
        reason,
        "validation",
    )
    assert record.locked_by is None


async def test_operators_requeue_failed_jobs(db: Database) -> None:
    queue = make_queue(db.engine)
    ids = [(await enqueue(queue, f"bad-{n}"))[0] for n in range(3)]
    claimed = await queue.claim("w1", 10, 60)
    await queue.complete(
        "w1", [JobOutcome(c.id, OutcomeStatus.FAILED, error="invalid") for c in claimed]
    )
    assert await queue.requeue_failed([ids[0]]) == 1
    assert (await job(queue, ids[0])).state == "pending"
    assert (await job(queue, ids[0])).attempts == 0
    assert (await job(queue, ids[1])).state == "failed"
    assert await queue.requeue_failed() == 2
    assert await queue.counts() == {"pending": 3, "running": 0, "done": 0, "failed": 0}


async def test_requeue_merges_into_a_pending_job_of_the_same_entity(db: Database) -> None:
    queue = make_queue(db.engine)
    failed_id, _ = await enqueue(queue, "cust")
    [claimed] = await queue.claim("w1", 1, 60)
    await queue.complete("w1", [JobOutcome(claimed.id, OutcomeStatus.FAILED, error="bad")])
    pending_id, _ = await enqueue(queue, "cust", priority=7)
    await queue.requeue_failed()
    rows = {r.id: r for r in await rows_of(db.engine, "cust")}
    assert rows[pending_id].state == "pending"
    assert rows[failed_id].state == "done"
    assert rows[failed_id].last_error_kind == "superseded"
    assert f"merged into job {pending_id}" in (rows[failed_id].last_error or "")


async def test_a_retry_while_a_follow_up_waits_folds_into_it(db: Database) -> None:
    queue = make_queue(db.engine)
    first, _ = await enqueue(queue, "cust", priority=2)
    [claimed] = await queue.claim("w1", 1, 60)
    follow_up, _ = await enqueue(queue, "cust", priority=8)
    summary = await queue.complete("w1", [JobOutcome(claimed.id, OutcomeStatus.RETRY, error="503")])
    assert summary.superseded == 1
    rows = {r.id: r for r in await rows_of(db.engine, "cust")}
    assert rows[first].state == "done"
    assert rows[first].last_error_kind == "superseded"
    assert rows[follow_up].state == "pending"
    assert rows[follow_up].priority == 2  # inherits the more urgent priority


async def test_outcomes_from_a_worker_that_lost_its_lease_are_ignored(db: Database) -> None:
    queue = make_queue(db.engine)
    job_id, _ = await enqueue(queue, "slow")
    await queue.claim("w1", 1, 60)
    await set_times(db.engine, job_id, lease_until=1)
    assert await queue.rescue_expired() == 1
    await set_times(db.engine, job_id, run_at=0)
    [again] = await queue.claim("w2", 1, 60)
    done_before = finished("done")
    stale = await queue.complete("w1", [JobOutcome(job_id, OutcomeStatus.DONE)])
    assert stale.ignored == 1
    assert finished("done") == done_before  # an ignored outcome finished nothing
    assert (await job(queue, job_id)).locked_by == "w2"
    assert again.attempts == 2


async def test_an_expired_lease_is_rescued_after_a_backoff(db: Database) -> None:
    queue = make_queue(db.engine)
    job_id, _ = await enqueue(queue, "crashed")
    await queue.claim("dead-worker", 1, 0.2)
    await asyncio.sleep(0.4)
    retried_before = finished("retry")
    assert await queue.rescue_expired() == 1
    assert finished("retry") == retried_before + 1  # the dead worker's attempt ended
    record = await job(queue, job_id)
    assert record.state == "pending"
    assert record.last_error_kind == "lease_expired"
    assert "dead-worker" in (record.last_error or "")
    assert 0.5 <= seconds_until_run(record) <= 1.5  # a backoff: no crash loop


async def test_a_live_heartbeating_job_is_never_rescued(db: Database) -> None:
    queue = make_queue(db.engine)
    job_id, _ = await enqueue(queue, "long")
    await queue.claim("alive", 1, 0.6)
    for _ in range(12):  # 2.4 s: four times the lease
        assert await queue.extend_lease("alive", [job_id], 0.6) == {job_id}
        assert await queue.rescue_expired() == 0
        await asyncio.sleep(0.2)
    record = await job(queue, job_id)
    assert (record.state, record.locked_by) == ("running", "alive")


async def test_release_returns_held_jobs_without_spending_an_attempt(db: Database) -> None:
    queue = make_queue(db.engine)
    ids = [(await enqueue(queue, f"r{n}"))[0] for n in range(3)]
    await queue.claim("stopping", 10, 60)
    other, _ = await enqueue(queue, "other")
    await queue.claim("someone-else", 10, 60)
    assert await queue.release("stopping") == 3
    for job_id in ids:
        record = await job(queue, job_id)
        assert (record.state, record.attempts, record.locked_by) == ("pending", 0, None)
    assert (await job(queue, other)).state == "running"
    assert len(await queue.claim("next", 10, 60)) == 3


async def test_prune_deletes_old_done_jobs_in_bounded_batches(db: Database) -> None:
    queue = make_queue(db.engine)
    async with db.engine.begin() as connection:
        batch = await queue.enqueue_many(
            connection, "customer", [f"p{n}" for n in range(30)], source="api", direction="both"
        )
    claimed = await queue.claim("w", 30, 60)
    outcomes = [JobOutcome(c.id, OutcomeStatus.DONE) for c in claimed[:28]]
    outcomes += [JobOutcome(c.id, OutcomeStatus.FAILED, error="x") for c in claimed[28:]]
    await queue.complete("w", outcomes)
    old_done = [c.id for c in claimed[:25]]
    for job_id in [*old_done, *(c.id for c in claimed[28:])]:
        await set_times(db.engine, job_id, finished_at=8 * 86400)
    live, _ = await enqueue(queue, "live")
    await set_times(db.engine, live, created_at=30 * 86400)
    deleted = await queue.prune_done(timedelta(days=7), batch_size=10, max_batches=2)
    assert deleted == 20
    assert await queue.prune_done(timedelta(days=7), batch_size=10) == 5
    counts = await queue.counts()
    assert counts == {"pending": 1, "running": 0, "done": 3, "failed": 2}
    assert len(batch.job_ids) == 30
