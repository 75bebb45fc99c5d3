"""The operator's API — the JSON twin of the console — against the sandbox: dashboard figures
equal the database's, pause holds the immediate sync back, failed jobs re-run by filter,
conflicts resolve through the engine, every action audited under the token's label."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from app.main import create_app
from app.store.models import (
    GENERAL_BUCKET,
    Conflict,
    FieldState,
    RateLimitGrant,
    ReconciliationRun,
    SyncJob,
)
from app.store.queue import QUEUE
from tests.conftest import Database
from tests.integration.test_job_api import add_customers
from tests.support import api_only_settings, running

TOKEN = "operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_only_settings(db.env, TOKEN)
    async with running(create_app(settings)) as http:
        yield http


async def _count(db: Database, *where: Any) -> int:
    async with db.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(QUEUE).where(*where)))


async def test_every_operator_route_needs_the_token(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/v1/sync/dashboard"),
        ("GET", "/v1/sync/customers"),
        ("GET", "/v1/sync/directions"),
        ("POST", "/v1/sync/directions/outbound/pause"),
        ("POST", "/v1/sync/directions/outbound/resume"),
        ("GET", "/v1/sync/conflicts"),
        ("POST", "/v1/sync/conflicts/1/resolve"),
        ("GET", "/v1/sync/failed"),
        ("POST", "/v1/sync/failed/retry"),
        ("GET", "/v1/sync/audit"),
    ]:
        response = await client.request(method, path)
        assert response.status_code == 401, path


async def test_dashboard_figures_equal_the_database(
    client: httpx.AsyncClient, db: Database
) -> None:
    ids = await add_customers(db, 4)
    for customer_id in ids[:3]:
        await client.post(f"/v1/sync/customers/{customer_id}/queue", headers=AUTH)
    processed = await client.post("/v1/sync/process-queue", headers=AUTH)
    assert processed.json()["done"] == 3
    await client.post(f"/v1/sync/customers/{ids[3]}/queue", headers=AUTH)

    body = (await client.get("/v1/sync/dashboard", headers=AUTH)).json()

    assert body["queue"]["by_state"] == {
        state: await _count(db, QUEUE.c.state == state)
        for state in ("pending", "running", "done", "failed")
    }
    assert body["queue"]["by_state"]["done"] == 3
    assert body["queue"]["oldest_pending"]["entity_key"] == ids[3]
    assert body["customers"] == {"total": 4, "linked": 3, "not_linked": 1}
    assert sum(m["done"] for m in body["jobs_per_minute"]) == 3
    assert len(body["jobs_per_minute"]) == 180
    assert body["open_conflicts"] == 0
    assert body["paused"] == []
    assert body["counted_at"] is None  # the counts are quick here: counted for this answer

    # ...so the next answer counts the job done since, rather than repeating the last count.
    assert (await client.post("/v1/sync/process-queue", headers=AUTH)).json()["done"] == 1
    again = (await client.get("/v1/sync/dashboard", headers=AUTH)).json()
    assert again["queue"]["by_state"]["done"] == 4
    assert again["customers"] == {"total": 4, "linked": 4, "not_linked": 0}


async def test_dashboard_shows_the_newest_reconciliation(
    client: httpx.AsyncClient, db: Database
) -> None:
    assert (await client.get("/v1/sync/dashboard", headers=AUTH)).json()[
        "last_reconciliation"
    ] is None
    started = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    async with db.engine.begin() as connection:
        await connection.execute(
            ReconciliationRun.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "mode": "fix",
                    "trigger": "schedule",
                    "status": "done",
                    "counts": {"drift": 3},
                    "started_at": started,
                    "finished_at": started + timedelta(minutes=5),
                },
                {
                    "mode": "dry_run",
                    "trigger": "api",
                    "status": "running",
                    "counts": None,
                    "started_at": started + timedelta(hours=1),
                    "finished_at": None,
                },
            ],
        )

    body = (await client.get("/v1/sync/dashboard", headers=AUTH)).json()

    last = body["last_reconciliation"]
    assert {k: last[k] for k in ("mode", "status", "finished_at", "counts")} == {
        "mode": "dry_run",
        "status": "running",
        "finished_at": None,
        "counts": {},
    }
    assert last["started_at"] == (started + timedelta(hours=1)).isoformat()


async def test_dashboard_counts_hubspot_requests_in_the_window(
    client: httpx.AsyncClient, db: Database
) -> None:
    now = datetime.now(UTC)
    async with db.engine.begin() as connection:
        await connection.execute(
            RateLimitGrant.__table__.insert(),
            [
                {"bucket": GENERAL_BUCKET, "granted_at": now - timedelta(seconds=s)}
                for s in (1, 2, 3, 60)  # the last one is outside the 10 s window
            ],
        )
    in_window = select(func.count()).where(
        RateLimitGrant.granted_at > func.now() - timedelta(seconds=10)
    )
    async with db.engine.connect() as connection:
        before = await connection.scalar(in_window)
    hubspot = (await client.get("/v1/sync/dashboard", headers=AUTH)).json()["hubspot"]
    async with db.engine.connect() as connection:
        after = await connection.scalar(in_window)
    if db.kind == "postgresql":  # the shared limit's log (start-up's own requests included)
        assert before >= hubspot["used"] >= after >= 3
        assert hubspot["headroom"] == 100 - hubspot["used"]
    else:  # SQLite: the limit is kept per process, not in the database
        assert hubspot["used"] is None
    assert hubspot["limit"] == 100


async def test_pause_holds_the_immediate_sync_and_resume_lets_it_run(
    client: httpx.AsyncClient, db: Database
) -> None:
    [customer_id] = await add_customers(db, 1)
    paused = await client.post(
        "/v1/sync/directions/outbound/pause", headers=AUTH, json={"reason": "CRM cleanup"}
    )
    assert paused.status_code == 200
    assert paused.json()["changed"] is True
    [outbound] = [d for d in paused.json()["directions"] if d["direction"] == "outbound"]
    assert outbound["pause"]["reason"] == "CRM cleanup"
    assert outbound["pause"]["paused_by"] == "api-token-1"

    now = await client.post(f"/v1/sync/customers/{customer_id}/to-hubspot", headers=AUTH)
    assert now.status_code == 202
    assert now.json()["status"] == "queued"
    assert (await client.post("/v1/sync/process-queue", headers=AUTH)).json()["claimed"] == 0
    assert await _count(db, QUEUE.c.state == "pending") == 1

    resumed = await client.post("/v1/sync/directions/outbound/resume", headers=AUTH)
    assert resumed.json()["changed"] is True
    assert (await client.post("/v1/sync/process-queue", headers=AUTH)).json()["done"] == 1
    audit = (await client.get("/v1/sync/audit", headers=AUTH)).json()["actions"]
    assert [(a["action"], a["target"], a["actor"]) for a in audit[:2]] == [
        ("direction.resume", "outbound", "api-token-1"),
        ("direction.pause", "outbound", "api-token-1"),
    ]
    unknown = await client.post("/v1/sync/directions/sideways/pause", headers=AUTH)
    assert unknown.status_code == 404


async def test_failed_jobs_listed_and_retried_by_filter(
    client: httpx.AsyncClient, db: Database
) -> None:
    ids = await add_customers(db, 3)
    for customer_id in ids:
        await client.post(f"/v1/sync/customers/{customer_id}/queue", headers=AUTH)
    async with db.engine.begin() as connection:
        await connection.execute(
            update(SyncJob)
            .where(SyncJob.entity_key.in_(ids[:2]))
            .values(state="failed", last_error="HubSpot said no", last_error_kind="validation")
        )
        await connection.execute(
            update(SyncJob)
            .where(SyncJob.entity_key == ids[2])
            .values(state="failed", last_error="timeout", last_error_kind="transport")
        )
    listed = (await client.get("/v1/sync/failed?kind=validation", headers=AUTH)).json()
    assert sorted(job["entity_key"] for job in listed["jobs"]) == sorted(ids[:2])
    assert listed["jobs"][0]["last_error"] == "HubSpot said no"

    retried = await client.post(
        "/v1/sync/failed/retry", headers=AUTH, json={"filter": {"kind": "validation"}}
    )
    assert retried.json() == {"requeued": 2}
    assert await _count(db, QUEUE.c.state == "failed") == 1
    bad = await client.post("/v1/sync/failed/retry", headers=AUTH, json={"job_ids": ["x"]})
    assert bad.status_code == 422
    neither = await client.post("/v1/sync/failed/retry", headers=AUTH, json={})
    assert neither.status_code == 422


async def test_resolve_refuses_what_it_cannot_do(client: httpx.AsyncClient, db: Database) -> None:
    missing = await client.post(
        "/v1/sync/conflicts/12345/resolve", headers=AUTH, json={"choice": "WARP"}
    )
    assert missing.status_code == 404
    [customer_id] = await add_customers(db, 1)
    async with db.engine.begin() as connection:
        result = await connection.execute(
            Conflict.__table__.insert().values(
                warp_customer_id=customer_id,
                field="credit_limit",
                warp_value="100",
                hubspot_value="200",
                state="open",
            )
        )
        await connection.execute(
            FieldState.__table__.insert().values(
                warp_customer_id=customer_id, field="credit_limit", warp_value="100"
            )
        )
        conflict_id = result.inserted_primary_key[0]
    path = f"/v1/sync/conflicts/{conflict_id}/resolve"
    assert (await client.post(path, headers=AUTH, json={"choice": "MAYBE"})).status_code == 422
    typed = await client.post(path, headers=AUTH, json={"choice": "VALUE", "value": "lots"})
    assert typed.status_code == 422
    assert "not a number" in typed.json()["detail"]
    listed = (await client.get("/v1/sync/conflicts", headers=AUTH)).json()["conflicts"]
    assert [(c["id"], c["warp_value"], c["hubspot_value"]) for c in listed] == [
        (conflict_id, "100", "200")
    ]


async def test_customer_search_by_ban_and_name(client: httpx.AsyncClient, db: Database) -> None:
    ids = await add_customers(db, 12)
    by_ban = (await client.get("/v1/sync/customers?q=ZT-000000003", headers=AUTH)).json()
    assert [c["id"] for c in by_ban["customers"]] == [ids[3]]
    by_name = (await client.get("/v1/sync/customers?q=co 1", headers=AUTH)).json()
    assert sorted(c["company_name"] for c in by_name["customers"]) == ["Co 1", "Co 10", "Co 11"]
    first = (await client.get("/v1/sync/customers?limit=5", headers=AUTH)).json()
    after = first["next_after_id"]
    second = (await client.get(f"/v1/sync/customers?limit=5&after_id={after}", headers=AUTH)).json()
    assert len(first["customers"]) == len(second["customers"]) == 5
    assert not {c["id"] for c in first["customers"]} & {c["id"] for c in second["customers"]}
    assert (await client.get("/v1/sync/customers?limit=0", headers=AUTH)).status_code == 422


async def test_a_deleted_customers_conflict_answers_409_and_is_closed(
    client: httpx.AsyncClient, db: Database
) -> None:
    """The customer is gone from WARP: 409 `customer_deleted`, the conflict is closed as moot
    (no value), and a second try is 409 `not_open`."""
    async with db.engine.begin() as connection:
        result = await connection.execute(
            Conflict.__table__.insert().values(
                warp_customer_id="9b2f7c1e-0000-4000-8000-000000000001",
                field="credit_limit",
                warp_value="100",
                hubspot_value="200",
                state="open",
            )
        )
        conflict_id = result.inserted_primary_key[0]
    path = f"/v1/sync/conflicts/{conflict_id}/resolve"
    typed = await client.post(path, headers=AUTH, json={"choice": "VALUE", "value": "300"})
    assert typed.status_code == 409, typed.text
    assert typed.json()["error"] == "customer_deleted"
    again = await client.post(path, headers=AUTH, json={"choice": "WARP"})
    assert (again.status_code, again.json()["error"]) == (409, "not_open")
    closed = (await client.get("/v1/sync/conflicts?state=resolved", headers=AUTH)).json()
    [row] = closed["conflicts"]
    assert (row["id"], row["resolution"], row["resolved_value"]) == (
        conflict_id,
        "WARP_DELETED",
        None,
    )
