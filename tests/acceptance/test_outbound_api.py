"""WARP -> HubSpot through the job API of the whole service, against the built-in sandbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.context import AppContext
from app.main import create_app
from app.sandbox.sandbox import Sandbox
from app.settings import Settings
from app.sync.core.jobs import EntityType
from app.warp.schema import customers_table
from tests.conftest import Database
from tests.support import eventually, running_service

AUTH = {"Authorization": "Bearer gateway-token"}


@dataclass
class Api:
    db: Database
    client: httpx.AsyncClient
    context: AppContext
    sandbox: Sandbox
    added: int = 0

    async def add_customer(self, **values: Any) -> str:
        self.added += 1
        customer_id = str(uuid.uuid4())
        row = {
            "id": customer_id,
            "ban": f"ZT-{300000000 + self.added}",
            "company_name": f"API Customer {self.added}",
            "customer_type": "PREPAID",
            "status": "ACTIVE",
            "credit_limit": Decimal("500"),
            "current_balance": Decimal("42.10"),
            "contact": {"email": f"ops@api{self.added}.example"},
            "services": {"voice": {"enabled": True}, "messaging": {"enabled": True}},
            "external_ids": {"billing_system": "legacy-7"},
            **values,
        }
        async with self.db.engine.begin() as connection:
            await connection.execute(
                customers_table(self.db.customers_table).insert().values(**row)
            )
        return customer_id

    async def job_state(self, job_id: int) -> str:
        response = await self.client.get(f"/v1/sync/jobs/{job_id}", headers=AUTH)
        return str(response.json()["state"])


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    settings = Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_API_TOKENS": "gateway-token",
            "HUBSYNC_SCHEDULER": "false",
            "HUBSYNC_RETRY_BASE_SECONDS": "0.1",
            "HUBSPOT_RATE_LIMIT": "1000/1s",
            "HUBSYNC_SANDBOX_RATE_LIMIT": "1000/1s",  # the built-in sandbox's own limit
        }
    )
    async with running_service(create_app(settings)) as (client, context):
        yield Api(db, client, context, context.sandbox)


async def test_to_hubspot_creates_the_company_with_every_property(api: Api) -> None:
    customer_id = await api.add_customer(ban="ZT-111222333", company_name="Gateway Co")

    response = await api.client.post(f"/v1/sync/customers/{customer_id}/to-hubspot", headers=AUTH)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["outcome"]) == ("done", "created")
    company = api.sandbox.companies.require(body["hubspot_company_id"])
    assert {
        name: company.value(name)
        for name in (
            "warp_ban",
            "name",
            "domain",
            "warp_status",
            "warp_customer_type",
            "warp_credit_limit",
            "warp_current_balance",
            "warp_services_voice",
            "warp_services_messaging",
            "warp_services_data",
        )
    } == {
        "warp_ban": "ZT-111222333",
        "name": "Gateway Co",
        "domain": "api1.example",
        "warp_status": "ACTIVE",
        "warp_customer_type": "PREPAID",
        "warp_credit_limit": "500",
        "warp_current_balance": "42.1",
        "warp_services_voice": "true",
        "warp_services_messaging": "true",
        "warp_services_data": None,
    }
    customer = (await api.context.warp.fetch_customers([customer_id]))[customer_id]
    assert customer["external_ids"] == {
        "billing_system": "legacy-7",
        "hubspot_company_id": body["hubspot_company_id"],
    }


async def test_queued_update_sends_only_the_changed_property(api: Api) -> None:
    customer_id = await api.add_customer()
    created = await api.client.post(f"/v1/sync/customers/{customer_id}/to-hubspot", headers=AUTH)
    company = api.sandbox.companies.require(created.json()["hubspot_company_id"])
    await api.context.warp.write_fields(customer_id, {"status": "SUSPENDED"})

    queued = await api.client.post(
        f"/v1/sync/customers/{customer_id}/queue", headers=AUTH, json={"priority": 2}
    )

    assert queued.status_code == 202, queued.text
    job_id = queued.json()["job_id"]
    await eventually(lambda: _is(api.job_state(job_id), "done"))
    assert company.value("warp_status") == "SUSPENDED"
    assert len(company.versions("warp_status")) == 2
    assert all(
        len(company.versions(name)) == 1
        for name in ("name", "warp_credit_limit", "warp_current_balance", "domain")
    ), "an unchanged property was written again"
    state = await api.client.get(f"/v1/sync/customers/{customer_id}", headers=AUTH)
    assert state.status_code == 200
    document = state.json()
    assert document["link"]["hubspot_company_id"] == company.id
    assert document["fields"]["status"]["base_value"] == "SUSPENDED"
    assert [s["outcome"] for s in document["recent_syncs"]][:2] == ["updated", "created"]


async def test_unknown_customers_are_404(api: Api) -> None:
    unknown = "0d2b7f4e-1111-4c1e-9a51-000000000000"
    for method, path in (
        ("POST", f"/v1/sync/customers/{unknown}/to-hubspot"),
        ("POST", f"/v1/sync/customers/{unknown}/queue"),
        ("GET", f"/v1/sync/customers/{unknown}"),
        ("POST", "/v1/sync/customers/not-a-uuid/to-hubspot"),
    ):
        response = await api.client.request(method, path, headers=AUTH)
        assert response.status_code == 404, (method, path, response.text)
        assert unknown in response.json()["detail"] or "not-a-uuid" in response.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
async def test_missing_or_wrong_token_is_401(api: Api, headers: dict[str, str]) -> None:
    customer_id = await api.add_customer()
    for path in (
        f"/v1/sync/customers/{customer_id}/to-hubspot",
        f"/v1/sync/customers/{customer_id}/queue",
    ):
        response = await api.client.post(path, headers=headers)
        assert response.status_code == 401
    assert api.sandbox.stats()["companies"] == 0


async def test_bad_bodies_are_422_naming_the_field(api: Api) -> None:
    customer_id = await api.add_customer()
    bad_priority = await api.client.post(
        f"/v1/sync/customers/{customer_id}/queue", headers=AUTH, json={"priority": 11}
    )
    body_on_sync = await api.client.post(
        f"/v1/sync/customers/{customer_id}/to-hubspot", headers=AUTH, json={"x": 1}
    )
    assert bad_priority.status_code == 422
    assert bad_priority.json()["field"] == "priority"
    assert body_on_sync.status_code == 422


async def test_a_customer_being_synced_is_409_not_synced_twice(api: Api) -> None:
    customer_id = await api.add_customer()
    queue = api.context.queue
    held = await queue.claim_entity(
        EntityType.CUSTOMER, customer_id, worker_id="another-worker", lease_seconds=30
    )

    response = await api.client.post(f"/v1/sync/customers/{customer_id}/to-hubspot", headers=AUTH)

    assert response.status_code == 409
    assert str(held.id) in response.json()["detail"]
    assert api.sandbox.stats()["companies"] == 0


async def test_hubspot_validation_error_fails_at_once_with_hubspots_message(api: Api) -> None:
    await api.context.hubspot.update_property(
        "warp_customer_type",
        {
            "options": [
                {"label": "Postpaid", "value": "POSTPAID", "displayOrder": 0, "hidden": False}
            ]
        },
    )
    customer_id = await api.add_customer(customer_type="PREPAID")

    response = await api.client.post(f"/v1/sync/customers/{customer_id}/to-hubspot", headers=AUTH)

    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "failed"
    assert "PREPAID" in body["error"]
    job = await api.client.get(f"/v1/sync/jobs/{body['job_id']}", headers=AUTH)
    assert job.json()["state"] == "failed"
    assert job.json()["attempts"] == 1


@pytest.mark.slow
async def test_every_job_completes_through_30_percent_429s_and_5xx(api: Api) -> None:
    ids = [await api.add_customer() for _ in range(60)]
    api.sandbox.set_faults(error_rate=0.3, statuses=[429, 500, 502, 503, 504], seed=7)

    queued = await api.client.post(
        "/v1/sync/customers/queue", headers=AUTH, json={"customer_ids": ids}
    )
    assert queued.status_code == 202
    assert queued.json()["queued"] == 60

    async def all_done() -> bool:
        counts = await api.context.queue.counts()
        return counts["done"] == 60 and counts["pending"] == counts["running"] == 0

    await eventually(all_done, timeout=90, interval=0.2)
    counts = await api.context.queue.counts()
    assert counts["failed"] == 0
    assert api.sandbox.stats()["faults_injected"] > 0
    bans = {c.value("warp_ban") for c in api.sandbox.companies.active()}
    assert len(bans) == 60 == api.sandbox.stats()["companies"], "one company per customer"


async def _is(value: Any, expected: str) -> bool:
    return await value == expected
