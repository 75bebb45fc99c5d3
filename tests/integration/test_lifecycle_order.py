"""Issue 12, case 9: a job that got a 404 marked the link deleted after the company's restore
had been processed, and the company was never synced again. Deletion and restore are now
ordered by when they happened (the event's occurredAt, the time of the read that saw the
404), never by when hubsync got round to processing them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from app.hubspot.models import BatchResult
from app.sandbox.store import WriteSource
from app.store.queue import QueueRepository
from app.sync.core.events import parse_event
from app.sync.core.jobs import EntityType, JobDirection
from app.sync.intake.routing import accept_delivery
from tests.conftest import Database
from tests.syncenv import SyncEnv, sync_env
from tests.webhook_support import lifecycle, links

PERSON = WriteSource("CRM_UI", "userId:7", 7)


async def restore_now(env: SyncEnv, company_id: str, at_ms: int | None = None) -> None:
    """A person restores the company, and its webhook (dated `at_ms`, HubSpot's milliseconds;
    now by default) is processed at once."""
    env.sandbox.companies.restore(company_id, PERSON)
    at_ms = int(time.time() * 1000) if at_ms is None else at_ms
    event = parse_event(0, lifecycle("restore", int(company_id), at=at_ms))
    async with env.db.engine.begin() as connection:
        await accept_delivery(connection, [event], queue=QueueRepository(env.db.engine), app_id="1")


async def synced_then_archived(env: SyncEnv) -> tuple[str, str]:
    """A customer synced to a company a person then archived: (customer id, company id)."""
    customer = await env.add_customer()
    [created] = await env.sync(customer)
    company_id = created.result["hubspot_company_id"]  # type: ignore[index]
    env.sandbox.companies.archive(company_id, PERSON)
    return customer, company_id


@asynccontextmanager
async def restored_during_read(env: SyncEnv, company_id: str) -> AsyncIterator[None]:
    """HubSpot's reads return as usual, and the company's restore is processed right after
    each — the 404 is seen, then the restore lands before the engine acts on the 404. The
    restore is dated the millisecond the read began: HubSpot's event times are whole
    milliseconds, so a restore in that millisecond may well have followed the read."""
    read = env.hubspot.client.batch_read_companies

    async def read_then_restore(
        ids: Sequence[str],
        properties: Sequence[str],
        id_property: str | None = None,
        *,
        properties_with_history: Sequence[str] = (),
    ) -> BatchResult:
        began_ms = int(time.time() * 1000)
        result = await read(
            ids, properties, id_property, properties_with_history=properties_with_history
        )  # the 404 is seen here...
        await restore_now(
            env, company_id, began_ms
        )  # ...and the restore lands before it is acted on
        return result

    env.hubspot.client.batch_read_companies = read_then_restore  # type: ignore[method-assign]
    try:
        yield
    finally:
        env.hubspot.client.batch_read_companies = read  # type: ignore[method-assign]


async def test_a_stale_404_never_undoes_a_restore_processed_meanwhile(db: Database) -> None:
    async with sync_env(db) as env:
        customer, company_id = await synced_then_archived(env)
        async with restored_during_read(env, company_id):
            await env.sync(customer, direction=JobDirection.BOTH)
        assert (await links(db))[company_id] == (customer, "active")
        [after] = await env.sync(customer)
    assert after.status == "done"
    assert after.result is not None
    assert after.result["outcome"] in ("updated", "unchanged")


async def test_a_stale_404_on_a_company_job_never_undoes_a_restore(db: Database) -> None:
    async with sync_env(db) as env:
        customer, company_id = await synced_then_archived(env)
        async with restored_during_read(env, company_id):
            await env.sync(
                company_id, entity_type=EntityType.COMPANY, direction=JobDirection.TO_WARP
            )
        assert (await links(db))[company_id] == (customer, "active")
