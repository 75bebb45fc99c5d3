"""The reconciliation API: start (409 while one runs), list, read, items by category, the CSV
and JSON reports; bearer token required; bad input is a 4xx that says what is wrong."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from app.store import reconciliation as runs
from app.sync.reconcile.schedule import CATCHUP_JOB_ID, DAILY_JOB_ID, PRUNE_JOB_ID, TAKEOVER_JOB_ID
from tests.conftest import Database
from tests.integration.test_job_api import add_customers
from tests.support import api_only_settings, eventually, running, running_service

TOKEN = "operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_only_settings(db.env, TOKEN)
    async with running(create_app(settings)) as http:
        yield http


async def finished(client: httpx.AsyncClient, run_id: int) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await client.get(f"/v1/reconciliation/runs/{run_id}", headers=AUTH)
        ).json()
        return body if body["state"] != "running" else None

    result: dict[str, Any] = await eventually(done, timeout=30)
    return result


async def test_a_run_through_the_api_and_its_reports(
    db: Database, client: httpx.AsyncClient
) -> None:
    customers = await add_customers(db, 3)  # the sandbox is empty: all missing in HubSpot
    started = await client.post("/v1/reconciliation/runs", json={"mode": "dry_run"}, headers=AUTH)
    assert started.status_code == 202, started.text
    run = await finished(client, started.json()["id"])
    assert run["state"] == "done"
    assert run["mode"] == "dry_run"
    assert run["trigger"] == "api"
    assert run["counts"] == {"missing_in_hubspot": 3}
    assert run["hubspot_calls"] == 1
    listed = (await client.get("/v1/reconciliation/runs", headers=AUTH)).json()
    assert [r["id"] for r in listed["runs"]] == [run["id"]]

    page = await client.get(
        f"/v1/reconciliation/runs/{run['id']}/items",
        params={"category": "missing_in_hubspot", "limit": 2},
        headers=AUTH,
    )
    first = page.json()
    assert len(first["items"]) == 2
    rest = await client.get(
        f"/v1/reconciliation/runs/{run['id']}/items",
        params={"category": "missing_in_hubspot", "after": first["next_after"]},
        headers=AUTH,
    )
    ids = [i["warp_customer_id"] for i in first["items"] + rest.json()["items"]]
    assert sorted(ids) == sorted(customers)
    none = await client.get(
        f"/v1/reconciliation/runs/{run['id']}/items", params={"category": "drift"}, headers=AUTH
    )
    assert none.json()["items"] == []

    report = await client.get(f"/v1/reconciliation/runs/{run['id']}/report.csv", headers=AUTH)
    assert report.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert sorted(r["warp_customer_id"] for r in rows) == sorted(customers)
    assert {r["category"] for r in rows} == {"missing_in_hubspot"}
    document = json.loads(
        (await client.get(f"/v1/reconciliation/runs/{run['id']}/report.json", headers=AUTH)).text
    )
    assert document["run"]["id"] == run["id"]
    assert len(document["items"]) == 3


async def test_one_run_at_a_time_409(db: Database, client: httpx.AsyncClient) -> None:
    elsewhere = await runs.start_run(
        db.engine, mode="fix", trigger="schedule", owner="another-replica", lease_seconds=60
    )
    assert elsewhere is not None
    busy = await client.post("/v1/reconciliation/runs", json={"mode": "fix"}, headers=AUTH)
    assert busy.status_code == 409
    assert busy.json()["running_run_id"] == elsewhere.id
    await runs.finish_run(db.engine, elsewhere.id, "another-replica", status="done")
    again = await client.post("/v1/reconciliation/runs", json={"mode": "fix"}, headers=AUTH)
    assert again.status_code == 202
    await finished(client, again.json()["id"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/reconciliation/runs", {"mode": "delete_everything"}, 422),
        ("POST", "/v1/reconciliation/runs", {"mode": "fix", "extra": 1}, 422),
        ("POST", "/v1/reconciliation/runs", None, 400),
        ("GET", "/v1/reconciliation/runs?limit=0", None, 422),
        ("GET", "/v1/reconciliation/runs?limit=abc", None, 422),
        ("GET", "/v1/reconciliation/runs/999", None, 404),
        ("GET", "/v1/reconciliation/runs/abc/report.csv", None, 404),
        ("GET", "/v1/reconciliation/runs/999/items", None, 404),
    ],
)
async def test_bad_requests_get_a_clear_4xx(
    client: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> None:
    answer = await client.request(method, path, json=body, headers=AUTH)
    assert answer.status_code == status
    assert answer.json()["detail"]


async def test_unknown_category_is_422(db: Database, client: httpx.AsyncClient) -> None:
    record = await runs.start_run(
        db.engine, mode="dry_run", trigger="api", owner="x", lease_seconds=60
    )
    assert record is not None
    answer = await client.get(
        f"/v1/reconciliation/runs/{record.id}/items", params={"category": "nope"}, headers=AUTH
    )
    assert answer.status_code == 422
    assert "category" in answer.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/reconciliation/runs", "/v1/reconciliation/runs/1"])
async def test_the_bearer_token_is_required(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 401
    assert (await client.get(path, headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_the_scheduler_carries_the_daily_run_catchup_takeover_and_pruning(
    db: Database,
) -> None:
    base = {**db.env, "HUBSYNC_WORKER": "false", "HUBSYNC_DEMO_DATA": "false"}
    async with running_service(create_app(Settings.from_mapping(base))) as (_, context):
        scheduler = context.scheduler
        daily = scheduler.get_job(DAILY_JOB_ID)
        assert daily is not None
        assert (daily.next_run_time.hour, daily.next_run_time.minute) == (3, 0)
        for job_id in (CATCHUP_JOB_ID, TAKEOVER_JOB_ID, PRUNE_JOB_ID):
            assert scheduler.get_job(job_id) is not None
    off = {**base, "HUBSYNC_RECONCILE_CRON": "", "HUBSYNC_CATCHUP_INTERVAL": "0"}
    async with running_service(create_app(Settings.from_mapping(off))) as (_, context):
        scheduler = context.scheduler
        assert scheduler.get_job(DAILY_JOB_ID) is None
        assert scheduler.get_job(CATCHUP_JOB_ID) is None
