"""The job API as the WARP gateway uses it: queue, bulk queue, process, look; tokens and keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.api.idempotency import request_fingerprint
from app.main import create_app
from app.settings import Settings
from app.store.idempotency import IdempotencyInFlightError, IdempotencyRepository
from app.store.queue import QueueRepository
from app.warp.schema import customers_table
from tests.conftest import Database
from tests.integration.queue_support import eventually
from tests.support import api_only_settings, running

TOKEN = "gateway-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def add_customers(db: Database, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    table = customers_table(db.customers_table)
    async with db.engine.begin() as connection:
        await connection.execute(
            table.insert(),
            [{"id": i, "ban": f"ZT-{n:09d}", "company_name": f"Co {n}"} for n, i in enumerate(ids)],
        )
    return ids


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_only_settings(db.env, f"other-token,{TOKEN}")
    async with running(create_app(settings)) as http:
        yield http


async def pending_count(db: Database) -> int:
    return (await QueueRepository(db.engine).counts())["pending"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "not-bearer"],
)
async def test_every_route_needs_a_valid_token(
    client: httpx.AsyncClient, db: Database, headers: dict[str, str]
) -> None:
    customer = str(uuid.uuid4())
    for method, path in [
        ("POST", f"/v1/sync/customers/{customer}/queue"),
        ("POST", "/v1/sync/customers/queue"),
        ("POST", "/v1/sync/process-queue"),
        ("GET", "/v1/sync/jobs/1"),
    ]:
        response = await client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"] == "unauthorized"
    assert await pending_count(db) == 0


async def test_queue_answers_202_with_a_committed_job(
    client: httpx.AsyncClient, db: Database
) -> None:
    [customer] = await add_customers(db, 1)
    response = await client.post(
        f"/v1/sync/customers/{customer}/queue", json={"priority": 2}, headers=AUTH
    )
    assert response.status_code == 202
    body = response.json()
    assert body == {
        "job_id": body["job_id"],
        "customer_id": customer,
        "state": "pending",
        "coalesced": False,
    }
    # The answer came after the commit: another connection sees the job at once.
    record = await QueueRepository(db.engine).get(body["job_id"])
    assert record is not None
    assert (record.entity_key, record.priority, record.source) == (customer, 2, "api")

    again = await client.post(f"/v1/sync/customers/{customer.upper()}/queue", headers=AUTH)
    assert again.status_code == 202
    assert again.json()["job_id"] == body["job_id"]
    assert again.json()["coalesced"] is True

    status = await client.get(f"/v1/sync/jobs/{body['job_id']}", headers=AUTH)
    assert status.status_code == 200
    job = status.json()
    assert (job["state"], job["priority"], job["attempts"], job["last_error"]) == (
        "pending",
        2,
        0,
        None,
    )
    assert job["run_at"] is not None
    assert job["created_at"] is not None


async def test_unknown_customers_and_jobs_are_404(client: httpx.AsyncClient, db: Database) -> None:
    response = await client.post(f"/v1/sync/customers/{uuid.uuid4()}/queue", headers=AUTH)
    assert response.status_code == 404
    assert "does not exist in WARP" in response.json()["detail"]
    # An id that cannot be a WARP customer's UUID matches no route at all.
    not_an_id = await client.post("/v1/sync/customers/not-a-uuid/queue", headers=AUTH)
    assert not_an_id.status_code == 404
    assert "no route" in not_an_id.json()["detail"]
    missing = await client.get("/v1/sync/jobs/999999", headers=AUTH)
    assert missing.status_code == 404
    assert await pending_count(db) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"priority": 0}, "priority"),
        ({"priority": 11}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"priority": True}, "priority"),
        ({"priorty": 1}, "priorty"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, db: Database, body: dict[str, Any], field: str
) -> None:
    [customer] = await add_customers(db, 1)
    response = await client.post(f"/v1/sync/customers/{customer}/queue", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert field in response.json()["detail"]
    assert await pending_count(db) == 0


async def test_a_body_that_is_not_an_object_is_422(client: httpx.AsyncClient, db: Database) -> None:
    [customer] = await add_customers(db, 1)
    response = await client.post(f"/v1/sync/customers/{customer}/queue", json=[1], headers=AUTH)
    assert response.status_code == 422


async def test_bulk_queue_counts_queued_coalesced_and_unknown(
    client: httpx.AsyncClient, db: Database
) -> None:
    ids = await add_customers(db, 30)
    await client.post(f"/v1/sync/customers/{ids[0]}/queue", headers=AUTH)
    stranger = str(uuid.uuid4())
    response = await client.post(
        "/v1/sync/customers/queue",
        json={"customer_ids": [*ids, ids[3], stranger, "junk"], "priority": 3},
        headers=AUTH,
    )
    assert response.status_code == 202
    assert response.json() == {
        "queued": 29,
        "coalesced": 1,
        "unknown_ids": [stranger, "junk"],
        "priority": 3,
    }
    assert await pending_count(db) == 30


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "customer_ids"),
        ({"customer_ids": []}, "customer_ids"),
        ({"customer_ids": "abc"}, "customer_ids"),
        ({"customer_ids": ["a", 7]}, "customer_ids[1]"),
        ({"customer_ids": ["x"] * 10_001}, "customer_ids"),
    ],
)
async def test_bulk_queue_rejects_bad_id_lists(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/sync/customers/queue", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["field"] == field


async def test_process_queue_runs_due_jobs_and_reports(
    client: httpx.AsyncClient, db: Database
) -> None:
    ids = await add_customers(db, 3)
    await client.post("/v1/sync/customers/queue", json={"customer_ids": ids}, headers=AUTH)
    response = await client.post("/v1/sync/process-queue", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["claimed"] == 3
    # Whatever the engine decided, every job was accounted for and none is left running.
    assert body["done"] + body["retried"] + body["failed"] == 3
    assert body["queue"]["running"] == 0


async def test_the_same_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, db: Database
) -> None:
    [customer] = await add_customers(db, 1)
    headers = {**AUTH, "Idempotency-Key": "req-1"}
    path = f"/v1/sync/customers/{customer}/queue"
    first = await client.post(path, json={"priority": 4}, headers=headers)
    second = await client.post(path, json={"priority": 4}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second.json()["coalesced"] is False  # replayed, not re-run
    assert second.headers["idempotent-replayed"] == "true"
    different = await client.post(path, json={"priority": 1}, headers=headers)
    assert different.status_code == 422
    assert different.json()["error"] == "idempotency_key_reused"
    fresh = await client.post(path, json={"priority": 4}, headers={**AUTH, "Idempotency-Key": "2"})
    assert fresh.json()["coalesced"] is True


async def test_a_duplicate_while_the_first_is_in_flight_is_409(
    client: httpx.AsyncClient, db: Database
) -> None:
    [customer] = await add_customers(db, 1)
    path = f"/v1/sync/customers/{customer}/queue"
    # The first request (on this or another replica) has reserved the key, not yet answered.
    repository = IdempotencyRepository(db.engine)
    endpoint = "api-token-2 POST /v1/sync/customers/{customer_id}/queue"
    assert (
        await repository.reserve("slow", endpoint, request_fingerprint("POST", path, b"{}")) is None
    )
    duplicate = await client.post(path, json={}, headers={**AUTH, "Idempotency-Key": "slow"})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"] == "idempotency_key_in_flight"
    assert await pending_count(db) == 0


async def test_concurrent_duplicates_run_once(client: httpx.AsyncClient, db: Database) -> None:
    [customer] = await add_customers(db, 1)
    path = f"/v1/sync/customers/{customer}/queue"
    headers = {**AUTH, "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(client.post(path, json={"priority": 3}, headers=headers) for _ in range(6))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {202, 409}
    accepted = [r.json() for r in responses if r.status_code == 202]
    assert accepted
    assert all(body == accepted[0] for body in accepted)
    assert await pending_count(db) == 1


async def test_a_key_whose_request_died_mid_flight_can_be_taken_over(db: Database) -> None:
    repository = IdempotencyRepository(db.engine, in_flight_timeout=0.2)
    assert await repository.reserve("k", "caller POST /x", "hash") is None
    with pytest.raises(IdempotencyInFlightError):
        await repository.reserve("k", "caller POST /x", "hash")
    await asyncio.sleep(0.3)
    assert await repository.reserve("k", "caller POST /x", "hash") is None


async def test_with_the_runtime_on_a_queued_job_is_worked_at_once(db: Database) -> None:
    settings = Settings.from_mapping(
        {**db.env, "HUBSYNC_API_TOKENS": TOKEN, "HUBSYNC_DEMO_DATA": "false"}
    )
    [customer] = await add_customers(db, 1)
    app = create_app(settings)
    async with running(app) as http:
        response = await http.post(f"/v1/sync/customers/{customer}/queue", headers=AUTH)
        job_id = response.json()["job_id"]

        async def finished() -> bool:
            job = (await http.get(f"/v1/sync/jobs/{job_id}", headers=AUTH)).json()
            return job["state"] in ("done", "failed")

        await eventually(finished, within=10, step=0.05)
    # Stopped gracefully: nothing is left claimed.
    assert (await QueueRepository(db.engine).counts())["running"] == 0
