"""Issue 12, case 11: `POST /v1/sync/customers/{id}/to-hubspot` never renewed its lease, so
with HubSpot slow the rescuer handed the job to a worker while the request still ran (two at
once). Now the route heartbeats like the worker does, and its time is bounded: past
HUBSYNC_SYNC_NOW_TIMEOUT it answers 202 while the sync finishes in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.main import create_app
from app.sandbox.faults import Faults
from app.settings import Settings
from app.store.queue import QueueRepository
from tests.acceptance.test_outbound_api import AUTH, Api
from tests.conftest import Database
from tests.support import eventually, running_service


@asynccontextmanager
async def slow_hubspot(db: Database, latency_ms: float, **extra: str) -> AsyncIterator[Api]:
    settings = Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_API_TOKENS": "gateway-token",
            "HUBSYNC_SCHEDULER": "false",
            "HUBSYNC_DEMO_DATA": "false",
            "HUBSYNC_LEASE_SECONDS": "1",
            "HUBSYNC_RETRY_BASE_SECONDS": "0.1",
            "HUBSPOT_RATE_LIMIT": "1000/1s",
            **extra,
        }
    )
    async with running_service(create_app(settings)) as (client, context):
        sandbox = context.sandbox
        sandbox.set_faults(Faults(latency_ms=latency_ms))
        yield Api(db, client, context, sandbox)


async def test_the_immediate_sync_keeps_its_lease_while_hubspot_is_slow(db: Database) -> None:
    async with slow_hubspot(db, latency_ms=1200, HUBSYNC_WORKER="false") as api:
        customer = await api.add_customer()
        queue: QueueRepository = api.context.queue
        request = asyncio.create_task(
            api.client.post(f"/v1/sync/customers/{customer}/to-hubspot", headers=AUTH)
        )
        rescued = 0
        while not request.done():  # the rescuer, as every replica runs it
            rescued += await queue.rescue_expired()
            await asyncio.sleep(0.1)
        answer = await request
        job = await queue.get(answer.json()["job_id"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "created"
    assert rescued == 0  # the lease never ran out while the request held it
    assert job is not None
    assert job.state == "done"
    assert job.attempts == 1


async def test_the_immediate_sync_answers_202_within_its_time_bound(db: Database) -> None:
    async with slow_hubspot(db, latency_ms=2500, HUBSYNC_SYNC_NOW_TIMEOUT="1") as api:
        customer = await api.add_customer()
        started = time.monotonic()
        answer = await api.client.post(f"/v1/sync/customers/{customer}/to-hubspot", headers=AUTH)
        took = time.monotonic() - started
        assert answer.status_code == 202, answer.text
        assert took < 2.0
        assert "1 s" in answer.json()["error"]
        job_id = answer.json()["job_id"]
        assert await api.job_state(job_id) == "running"  # still held: no one else takes it
        await eventually(lambda: _is(api.job_state(job_id), "done"), timeout=20)
    assert [c for c in api.sandbox.companies.active() if c.value("warp_ban")]


async def _is(value: object, expected: str) -> bool:
    return await value == expected  # type: ignore[misc]
