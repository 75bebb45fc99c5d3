"""Resolving a MANUAL conflict by hand: the chosen value reaches both sides through the
engine, the conflict is closed with who and how, and the action is audited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace as change
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from app.store.admin_audit import recent_actions
from app.store.models import Conflict, SyncJob
from app.store.pauses import pause_direction
from app.store.queue import QueueRepository
from app.store.sync_config import load_rules, replace_rules
from app.sync.core.jobs import ClaimedJob, JobDirection, JobOutcome, OutcomeStatus
from app.sync.core.rules import Authority
from app.sync.operator.resolution import (
    Choice,
    Resolution,
    ResolutionError,
    ResolveServices,
    resolve_conflict,
)
from app.warp.schema import customers_table
from tests.conftest import Database
from tests.syncenv import SyncEnv, rows, sync_env


@pytest.fixture
async def env(db: Database) -> AsyncIterator[SyncEnv]:
    async with sync_env(db) as environment:
        yield environment


async def open_conflict(env: SyncEnv) -> tuple[int, str, str]:
    """A customer whose name was changed on both sides under a MANUAL rule."""
    async with env.db.engine.begin() as connection:
        rules = await load_rules(connection)
        manual = [
            change(r, authority=Authority.MANUAL) if r.warp_field == "company_name" else r
            for r in rules
        ]
        await replace_rules(connection, manual, "test")
    customer_id = await env.add_customer(company_name="Original")
    [first] = await env.sync(customer_id)
    company_id = first.result["hubspot_company_id"]  # type: ignore[index]
    env.sandbox.edit_as_user(company_id, {"name": "Sales Name"})
    await env.warp.write_fields(customer_id, {"company_name": "Billing Name"})
    await env.sync(customer_id, direction=JobDirection.BOTH)
    [conflict] = await rows(env.db, Conflict, Conflict.warp_customer_id == customer_id)
    return conflict.id, customer_id, company_id


def jobs_finished(direction: str, outcome: str) -> float:
    """`hubsync_jobs_finished_total` as this process counts it."""
    labels = {"direction": direction, "outcome": outcome}
    return REGISTRY.get_sample_value("hubsync_jobs_finished_total", labels) or 0.0


def services(env: SyncEnv) -> ResolveServices:
    return ResolveServices(env.db.engine, env.warp, QueueRepository(env.db.engine), env.engine)


@pytest.mark.parametrize(
    ("choice", "typed", "expected"),
    [
        (Choice.WARP, None, "Billing Name"),
        (Choice.HUBSPOT, None, "Sales Name"),
        (Choice.VALUE, "  Agreed Name Ltd ", "Agreed Name Ltd"),
    ],
)
async def test_the_chosen_value_reaches_both_sides(
    env: SyncEnv, choice: Choice, typed: str | None, expected: str
) -> None:
    conflict_id, customer_id, company_id = await open_conflict(env)
    finished_before = jobs_finished("both", "done")

    resolution = await resolve_conflict(services(env), conflict_id, choice, typed, by="alice")

    assert resolution.outcome is not None
    assert resolution.outcome.status is OutcomeStatus.DONE, resolution.outcome.error
    assert env.company(company_id)["name"] == expected
    assert (await env.customer(customer_id))["company_name"] == expected
    [conflict] = await rows(env.db, Conflict, Conflict.id == conflict_id)
    assert (conflict.state, conflict.resolution, conflict.resolved_by) == (
        "resolved",
        choice.value,
        "alice",
    )
    assert conflict.resolved_value == expected
    assert await rows(env.db, Conflict, Conflict.state == "open") == []
    # The resolution's own sync is a finished job like a worker's, and counted as one.
    assert jobs_finished("both", "done") == finished_before + 1
    async with env.db.engine.connect() as connection:
        [entry] = await recent_actions(connection)
    assert (entry.actor, entry.action, entry.target) == (
        "alice",
        "conflict.resolve",
        f"conflict:{conflict_id}",
    )
    # A second sync finds both sides in agreement: no conflict comes back.
    [again] = await env.sync(customer_id, direction=JobDirection.BOTH)
    assert again.result is not None
    assert again.result["outcome"] == "unchanged"


async def test_a_resolved_or_unknown_conflict_is_refused(env: SyncEnv) -> None:
    conflict_id, _, _ = await open_conflict(env)
    await resolve_conflict(services(env), conflict_id, Choice.WARP, None, by="alice")
    with pytest.raises(ResolutionError, match="already resolved"):
        await resolve_conflict(services(env), conflict_id, Choice.HUBSPOT, None, by="bob")
    with pytest.raises(ResolutionError, match="does not exist"):
        await resolve_conflict(services(env), 999_999, Choice.HUBSPOT, None, by="bob")


async def test_while_paused_the_resolution_is_queued(env: SyncEnv) -> None:
    conflict_id, customer_id, company_id = await open_conflict(env)
    async with env.db.engine.begin() as connection:
        await pause_direction(connection, "outbound", by="test")
    resolution = await resolve_conflict(services(env), conflict_id, Choice.WARP, None, by="a")
    assert resolution.outcome is None
    job = await QueueRepository(env.db.engine).get(resolution.job_id or 0)
    assert job is not None
    assert (job.state, job.direction, job.entity_key) == ("pending", "both", customer_id)
    assert env.company(company_id)["name"] == "Sales Name"  # nothing written while paused


@pytest.mark.slow  # timing-sensitive: runs alone in make test-all, not beside other workers
async def test_a_long_resolution_sync_keeps_its_lease(env: SyncEnv) -> None:
    """The resolution's immediate sync holds its claimed job like a worker does: its lease is
    renewed while the sync runs, so no other worker takes the customer meanwhile."""
    conflict_id, _customer_id, _company_id = await open_conflict(env)
    lease = 0.6  # a renewal must answer within 0.6 of it (lease.py): room on a busy machine
    leases_seen: list[datetime] = []

    async def slow_engine(jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        await asyncio.sleep(lease * 4)  # far past the lease it was claimed with
        [job] = await rows(env.db, SyncJob, SyncJob.id == jobs[0].id)
        assert job.lease_until is not None
        leases_seen.append(job.lease_until.replace(tzinfo=job.lease_until.tzinfo or UTC))
        leases_seen.append(datetime.now(UTC))
        return await env.engine(jobs)

    slow = change(services(env), handler=slow_engine, lease_seconds=lease)
    resolution = await resolve_conflict(slow, conflict_id, Choice.WARP, None, by="alice")

    assert resolution.outcome is not None
    assert resolution.outcome.status is OutcomeStatus.DONE, resolution.outcome.error
    lease_until, now = leases_seen
    assert lease_until > now, "the lease ran out while the sync was still running"


async def test_two_concurrent_resolutions_one_wins_and_is_what_was_written(env: SyncEnv) -> None:
    """Two operators resolve the same conflict at the same moment with different values:
    one wins, the other is told the conflict is no longer open, and the record names the
    value both systems hold and the operator who wrote it."""
    conflict_id, customer_id, company_id = await open_conflict(env)

    answers = await asyncio.gather(
        resolve_conflict(services(env), conflict_id, Choice.VALUE, "Alice Ltd", by="alice"),
        resolve_conflict(services(env), conflict_id, Choice.VALUE, "Bob Ltd", by="bob"),
        return_exceptions=True,
    )

    won = [a for a in answers if isinstance(a, Resolution)]
    lost = [a for a in answers if isinstance(a, ResolutionError)]
    assert (len(won), [e.reason for e in lost]) == (1, ["not_open"]), answers
    [winner] = won
    [conflict] = await rows(env.db, Conflict, Conflict.id == conflict_id)
    assert conflict.resolved_value == winner.value
    assert conflict.resolved_by == ("alice" if winner.value == "Alice Ltd" else "bob")
    assert (await env.customer(customer_id))["company_name"] == winner.value
    assert env.company(company_id)["name"] == winner.value
    async with env.db.engine.connect() as connection:
        audited = [a for a in await recent_actions(connection) if a.action == "conflict.resolve"]
    assert [a.actor for a in audited] == [conflict.resolved_by]


@pytest.mark.parametrize(
    ("choice", "typed"), [(Choice.VALUE, "Typed Ltd"), (Choice.WARP, None), (Choice.HUBSPOT, None)]
)
async def test_a_deleted_customers_conflict_is_closed_as_moot_not_resolved(
    env: SyncEnv, choice: Choice, typed: str | None
) -> None:
    """The customer was deleted from WARP: no value can reach it. The resolution is refused
    (reason `customer_deleted`), the conflict is closed as moot with no value, and HubSpot is
    left as it was."""
    conflict_id, customer_id, company_id = await open_conflict(env)
    async with env.db.engine.begin() as connection:
        table = customers_table(env.db.customers_table)
        await connection.execute(table.delete().where(table.c.id == customer_id))

    with pytest.raises(ResolutionError) as refused:
        await resolve_conflict(services(env), conflict_id, choice, typed, by="alice")

    assert refused.value.reason == "customer_deleted"
    [conflict] = await rows(env.db, Conflict, Conflict.id == conflict_id)
    assert (conflict.state, conflict.resolution, conflict.resolved_value) == (
        "resolved",
        "WARP_DELETED",
        None,
    )
    assert conflict.resolved_by == "alice"
    assert env.company(company_id)["name"] == "Sales Name"
    assert await env.warp.existing_ids([customer_id]) == set()
    with pytest.raises(ResolutionError) as again:
        await resolve_conflict(services(env), conflict_id, choice, typed, by="bob")
    assert again.value.reason == "not_open"
