"""A webhook dated in the future never pins a field: an event whose `occurredAt` is later than
its receipt plus the allowed clock skew is stored, marked failed with the reason, and never
applied — and real edits made later, on either side, still win.

Signed deliveries go through the real webhook route; the jobs it queues are synced by the
engine against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.sync.core.events import MAX_CLOCK_SKEW_SECONDS
from app.sync.core.jobs import EntityType, JobDirection, JobSource, OutcomeStatus
from tests.conftest import Database
from tests.syncenv import SyncEnv, job, sync_env, synced
from tests.webhook_support import change, deliver, events_t, jobs, service

YEAR_MS = 365 * 24 * 3600 * 1000


@pytest.fixture
async def env(db: Database) -> AsyncIterator[SyncEnv]:
    async with sync_env(db) as environment:
        yield environment


def now_ms() -> int:
    return int(time.time() * 1000)


async def run_queued(env: SyncEnv, after_job: int) -> None:
    """Sync what the webhook route queued, as the worker would."""
    for row in await jobs(env.db):
        if row.id <= after_job:
            continue
        [outcome] = await env.engine(
            [
                job(
                    row.entity_key,
                    EntityType(row.entity_type),
                    JobDirection(row.direction),
                    JobSource.WEBHOOK,
                )
            ]
        )
        assert outcome.status is OutcomeStatus.DONE, outcome.error


async def last_job(env: SyncEnv) -> int:
    return max((row.id for row in await jobs(env.db)), default=0)


async def test_a_future_dated_event_is_failed_and_later_edits_win(env: SyncEnv) -> None:
    customer_id, company_id = await synced(env, credit_limit=Decimal("1000"))
    await env.sync(customer_id, direction=JobDirection.BOTH)  # the company has been read
    future = now_ms() + 3 * YEAR_MS
    async with service(env.db) as client:
        before = await last_job(env)
        answer = await deliver(
            client,
            [
                change(
                    int(company_id),
                    "999999",
                    future,
                    eventId=501,
                    propertyName="warp_credit_limit",
                )
            ],
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["failed"] == 1
        assert answer.json()["queued"] == 0
        async with env.db.engine.connect() as connection:
            [row] = list(
                await connection.execute(select(events_t).where(events_t.c.event_id == 501))
            )
        assert row.status == "failed"
        assert "occurredAt" in row.status_reason
        assert f"{MAX_CLOCK_SKEW_SECONDS} s" in row.status_reason
        assert row.occurred_at is None  # never taken as HubSpot's time for anything
        assert await last_job(env) == before  # nothing queued

        # A sync of the pair (a catch-up, a reconciliation) does not apply it either.
        await env.sync(customer_id, direction=JobDirection.BOTH)
        assert (await env.customer(customer_id))["credit_limit"] == Decimal("1000")
        assert env.company(company_id)["warp_credit_limit"] == "1000"

        # A real WARP edit made later reaches HubSpot ...
        await env.warp.write_fields(customer_id, {"credit_limit": Decimal("3000")})
        await env.sync(customer_id, direction=JobDirection.BOTH)
        assert env.company(company_id)["warp_credit_limit"] == "3000"

        # ... and a real CRM edit made later, delivered signed, reaches WARP.
        env.sandbox.edit_as_user(company_id, {"warp_credit_limit": "5000"})
        before = await last_job(env)
        answer = await deliver(
            client,
            [
                change(
                    int(company_id),
                    "5000",
                    now_ms(),
                    eventId=502,
                    propertyName="warp_credit_limit",
                )
            ],
        )
        assert answer.json()["queued"] == 1, answer.text
        await run_queued(env, before)
    assert (await env.customer(customer_id))["credit_limit"] == Decimal("5000")
    assert env.company(company_id)["warp_credit_limit"] == "5000"


async def test_an_event_within_the_skew_is_taken(env: SyncEnv) -> None:
    customer_id, company_id = await synced(env, credit_limit=Decimal("1000"))
    env.sandbox.edit_as_user(company_id, {"warp_credit_limit": "7000"})
    slightly_ahead = now_ms() + (MAX_CLOCK_SKEW_SECONDS - 30) * 1000  # HubSpot's clock is fast
    async with service(env.db) as client:
        before = await last_job(env)
        answer = await deliver(
            client,
            [change(int(company_id), "7000", slightly_ahead, propertyName="warp_credit_limit")],
        )
        assert answer.json()["queued"] == 1, answer.text
        await run_queued(env, before)
    assert (await env.customer(customer_id))["credit_limit"] == Decimal("7000")
