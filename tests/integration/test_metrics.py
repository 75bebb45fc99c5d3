"""`/metrics` after a known workload against the sandbox: N jobs, M webhook deliveries and
the 429s the sandbox injected are exactly what the counters say, and the exposition parses
with prometheus-client's own parser. (Counters live for the whole test process, so each test
compares a scrape after its workload with one before.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from app.main import create_app
from app.sandbox.faults import Faults
from app.settings import Settings, SettingsError
from app.store.db import create_engine
from app.store.models import Conflict, ReconciliationRun
from app.store.queue import QUEUE
from tests.acceptance.deployment import free_port
from tests.conftest import Database
from tests.metrics_support import Samples, add_customers, parse_exposition, total
from tests.support import eventually, running_service
from tests.webhook_support import TOKEN, change, deliver, settings_for

N_JOBS = 12
M_WEBHOOKS = 5


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse_exposition(response.text)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


async def test_counters_equal_a_known_workload(db: Database) -> None:
    settings = settings_for(
        db,
        HUBSYNC_WORKER="true",
        HUBSPOT_RATE_LIMIT="1000/1s",
        HUBSYNC_RETRY_BASE_SECONDS="0.2",
    )
    async with running_service(create_app(settings)) as (client, context):
        sandbox = context.sandbox
        customers = await add_customers(db, N_JOBS)
        before = await scrape(client)
        delivered_before = sandbox.stats()["webhooks_delivered"]
        events_before = sandbox.stats()["webhook_events_delivered"]
        sandbox.faults.configure(Faults(error_rate=1.0, statuses=(429,)))
        answer = await client.post(
            "/v1/sync/customers/queue",
            json={"customer_ids": customers},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 202, answer.text

        async def refused() -> bool:
            return sandbox.log.by_status[429] >= 1

        # An injected 429 pauses every HubSpot call for HubSpot's 10 s window.
        await eventually(refused, timeout=20)
        sandbox.faults.configure(Faults())

        async def all_done() -> bool:
            counts = await context.queue.counts()
            return counts["done"] == N_JOBS and counts["pending"] + counts["running"] == 0

        await eventually(all_done, timeout=30)
        # The sandbox delivers its own signed webhooks (the companies it created) into the
        # same route; they are counted too, once they have all arrived.
        await eventually(lambda: _webhooks_settled(sandbox), timeout=20)
        for n in range(M_WEBHOOKS):
            delivered = await deliver(client, [change(9_000_000 + n, value=f"Edited {n}")])
            assert delivered.status_code == 200, delivered.text
        refused = await client.post("/v1/webhooks/hubspot", content=b"[]")  # no signature
        assert refused.status_code == 401
        after = await scrape(client)

    injected_429s = sandbox.log.by_status[429]
    assert injected_429s >= 1
    done = delta(
        after, before, "hubsync_jobs_finished_total", direction="to_hubspot", outcome="done"
    )
    assert done == N_JOBS
    accepted = delta(after, before, "hubsync_webhook_deliveries_total", outcome="accepted")
    by_sandbox = sandbox.stats()["webhooks_delivered"] - delivered_before
    events_by_sandbox = sandbox.stats()["webhook_events_delivered"] - events_before
    assert accepted == M_WEBHOOKS + by_sandbox
    assert delta(after, before, "hubsync_webhook_deliveries_total", outcome="unauthorized") == 1
    assert delta(after, before, "hubsync_webhook_events_total") == M_WEBHOOKS + events_by_sandbox
    assert delta(after, before, "hubsync_hubspot_rate_limited_total") == injected_429s
    assert delta(after, before, "hubsync_hubspot_requests_total", status="429") == injected_429s
    upserts = delta(
        after, before, "hubsync_hubspot_requests_total", operation="batch_upsert", status="200"
    )
    assert upserts >= 1
    latencies = delta(after, before, "hubsync_queue_to_hubspot_seconds_count")
    assert latencies == N_JOBS
    # Gauges are read from the database at scrape time.
    assert total(after, "hubsync_database_up") == 1
    assert total(after, "hubsync_queue_jobs", state="failed") == 0
    assert total(after, "hubsync_rate_limit_requests", bucket="hubspot") == 1000


async def test_gauges_are_read_from_the_database(db: Database) -> None:
    settings = settings_for(db)  # no worker: what is queued stays pending
    async with running_service(create_app(settings)) as (client, _context):
        customers = await add_customers(db, 3)
        answer = await client.post(
            "/v1/sync/customers/queue",
            json={"customer_ids": customers},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 202
        async with db.engine.begin() as connection:
            await connection.execute(
                Conflict.__table__.insert().values(  # type: ignore[attr-defined]
                    warp_customer_id=customers[0], field="credit_limit", reason="test"
                )
            )
            conflicts = await connection.scalar(select(func.count()).select_from(Conflict))
            # The oldest job has waited two minutes (the others were queued just now).
            oldest = await connection.scalar(select(func.min(QUEUE.c.id)))
            await connection.execute(
                update(QUEUE)
                .where(QUEUE.c.id == oldest)
                .values(created_at=datetime.now(UTC) - timedelta(minutes=2))
            )
        assert conflicts == 1
        samples = await scrape(client)
    assert total(samples, "hubsync_queue_jobs", state="pending", direction="to_hubspot") == 3
    assert total(samples, "hubsync_queue_jobs", state="running") == 0
    assert total(samples, "hubsync_conflicts_open") == 1
    assert 110 <= total(samples, "hubsync_queue_oldest_waiting_seconds") < 180
    if db.kind == "postgresql":  # the shared rate-limit log lives in PostgreSQL
        assert ("hubsync_rate_limit_headroom", (("bucket", "hubspot"),)) in samples


async def test_a_database_outage_still_serves_the_counters(db: Database) -> None:
    async with running_service(create_app(settings_for(db))) as (client, context):
        await context.engine.dispose()
        # Nothing listens on port 1: every connection attempt fails at once.
        context.engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
        samples = await scrape(client)
    assert total(samples, "hubsync_database_up") == 0
    assert (
        "hubsync_queue_jobs",
        (("direction", "to_hubspot"), ("state", "pending")),
    ) not in samples


async def _webhooks_settled(sandbox: Any) -> bool:
    stats = sandbox.stats()
    if stats["webhooks_pending"] or stats["webhooks_retrying"]:
        return False
    await asyncio.sleep(0.3)  # a delivery being answered right now
    return bool(sandbox.stats()["webhooks_delivered"] == stats["webhooks_delivered"])


async def test_metrics_on_a_port_of_their_own(db: Database) -> None:
    port = free_port()
    settings = settings_for(db, HUBSYNC_METRICS_PORT=str(port))
    async with running_service(create_app(settings)) as (client, _context):
        assert (await client.get("/metrics")).status_code == 404  # not on the service's port
        async with httpx.AsyncClient() as scraper:
            answer = await scraper.get(f"http://127.0.0.1:{port}/metrics")
        assert answer.status_code == 200
        assert total(parse_exposition(answer.text), "hubsync_database_up") == 1
    async with httpx.AsyncClient() as scraper:
        with pytest.raises(httpx.ConnectError):  # stopped with the service
            await scraper.get(f"http://127.0.0.1:{port}/metrics")


def test_a_bad_metrics_port_is_a_configuration_error() -> None:
    with pytest.raises(SettingsError, match="HUBSYNC_METRICS_PORT"):
        Settings.from_mapping({"HUBSYNC_METRICS_PORT": "99999"})


async def test_the_last_successful_reconciliation_is_exported(db: Database) -> None:
    runs = ReconciliationRun.__table__
    finished = datetime(2026, 11, 28, 3, 0, 42, tzinfo=UTC)
    async with db.engine.begin() as connection:
        await connection.execute(
            runs.insert(),  # type: ignore[attr-defined]
            [
                {
                    "mode": "fix",
                    "trigger": "schedule",
                    "status": "done",
                    "counts": {"drift": 3, "in_sync": 40, "missing_in_hubspot": 1},
                    "error": None,
                    "started_at": finished - timedelta(minutes=5),
                    "finished_at": finished,
                },
                {  # a later run that failed: not a success
                    "mode": "fix",
                    "trigger": "api",
                    "status": "failed",
                    "counts": {"drift": 99},
                    "error": "HubSpot unreachable",
                    "started_at": finished + timedelta(hours=1),
                    "finished_at": finished + timedelta(hours=1, minutes=1),
                },
            ],
        )
    async with running_service(create_app(settings_for(db))) as (client, _context):
        samples = await scrape(client)
    stamp = total(samples, "hubsync_reconciliation_last_success_timestamp_seconds")
    assert stamp == finished.timestamp()
    assert total(samples, "hubsync_reconciliation_last_success_items", category="drift") == 3
    missing = total(
        samples, "hubsync_reconciliation_last_success_items", category="missing_in_hubspot"
    )
    assert missing == 1


async def test_never_reconciled_is_zero(db: Database) -> None:
    async with running_service(create_app(settings_for(db))) as (client, _context):
        samples = await scrape(client)
    assert total(samples, "hubsync_reconciliation_last_success_timestamp_seconds") == 0


async def test_jobs_finished_outside_the_worker_are_counted(db: Database) -> None:
    """Sync-now runs a job in the request, not in the worker: its finish is counted all the
    same (outcome, direction, and the queue-to-HubSpot latency)."""
    settings = settings_for(db, HUBSYNC_WORKER="false", HUBSPOT_RATE_LIMIT="1000/1s")
    async with running_service(create_app(settings)) as (client, _context):
        customers = await add_customers(db, 4)
        before = await scrape(client)
        for customer_id in customers:
            answer = await client.post(
                f"/v1/sync/customers/{customer_id}/to-hubspot",
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert answer.status_code == 200, answer.text
        after = await scrape(client)
    assert (
        delta(after, before, "hubsync_jobs_finished_total", direction="to_hubspot", outcome="done")
        == 4
    )
    assert delta(after, before, "hubsync_queue_to_hubspot_seconds_count") == 4
