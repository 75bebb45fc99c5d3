"""`POST /v1/sync/customers/{id}/relink`: an operator relinks or splits a held customer (the
embedded sandbox as HubSpot, the worker off so the queued job stays visible)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.store import sync_state
from app.store.models import FieldState
from app.store.queue import QueueRepository
from app.warp.schema import customers_table
from tests.conftest import Database
from tests.support import api_only_settings, running_service
from tests.syncenv import rows

TOKEN = "operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def service(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    settings = api_only_settings(db.env, TOKEN)
    async with running_service(create_app(settings)) as (client, context):
        yield client, context


async def held_customer(db: Database, ban: str, company_id: str = "900") -> str:
    """A customer whose link is held (`merged`), with some field state remembered."""
    customer_id = str(uuid.uuid4())
    async with db.engine.begin() as connection:
        await connection.execute(
            customers_table(db.customers_table).insert(),
            [{"id": customer_id, "ban": ban, "company_name": "Held Co"}],
        )
        await sync_state.save_link(
            connection, customer_id=customer_id, company_id=company_id, ban=ban, state="merged"
        )
        await sync_state.save_field_states(
            connection,
            [{"warp_customer_id": customer_id, "field": "company_name", "base_value": "Held Co"}],
        )
    return customer_id


async def test_split_frees_the_customer_and_queues_its_sync(
    service: tuple[httpx.AsyncClient, Any], db: Database
) -> None:
    client, _ = service
    customer_id = await held_customer(db, "ZT-000000071")

    response = await client.post(
        f"/v1/sync/customers/{customer_id}/relink", json={"action": "split"}, headers=AUTH
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["link"] == {
        "hubspot_company_id": None,
        "warp_ban": "ZT-000000071",
        "state": "active",
    }
    job = await QueueRepository(db.engine).get(body["job_id"])
    assert job is not None
    assert (job.entity_key, job.state) == (customer_id, "pending")
    assert await rows(db, FieldState, FieldState.warp_customer_id == customer_id) == []


async def test_relink_to_a_company_in_hubspot(
    service: tuple[httpx.AsyncClient, Any], db: Database
) -> None:
    client, context = service
    customer_id = await held_customer(db, "ZT-000000072")
    company = context.sandbox.companies.create({"name": "Chosen"}, context.sandbox.user_source(1))

    response = await client.post(
        f"/v1/sync/customers/{customer_id}/relink",
        json={"hubspot_company_id": company.id},
        headers=AUTH,
    )

    assert response.status_code == 202, response.text
    assert response.json()["link"]["hubspot_company_id"] == company.id
    assert response.json()["link"]["state"] == "active"


async def test_relink_refusals_say_what_is_wrong(
    service: tuple[httpx.AsyncClient, Any], db: Database
) -> None:
    client, context = service
    sandbox = context.sandbox
    taken = sandbox.companies.create({"name": "Taken"}, sandbox.user_source(1))
    other = await held_customer(db, "ZT-000000073", company_id=taken.id)
    customer_id = await held_customer(db, "ZT-000000074", company_id="901")
    path = f"/v1/sync/customers/{customer_id}/relink"

    cases = [
        (path, {"hubspot_company_id": taken.id}, AUTH, 409, other),
        (path, {"hubspot_company_id": "123456789"}, AUTH, 404, "does not exist"),
        (path, {"hubspot_company_id": "abc"}, AUTH, 422, "digits"),
        (path, {"action": "merge"}, AUTH, 422, "unknown action"),
        (path, {}, AUTH, 422, "split"),
        (path, {"action": "split"}, {}, 401, "bearer"),
        (f"/v1/sync/customers/{uuid.uuid4()}/relink", {"action": "split"}, AUTH, 404, "WARP"),
    ]
    for url, body, headers, status, words in cases:
        response = await client.post(url, json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["detail"], response.json()
    [link] = (await _links(db, customer_id)).values()
    assert link.state == "merged", "a refused relink changes nothing"


async def _links(db: Database, customer_id: str) -> dict[str, Any]:
    async with db.engine.connect() as connection:
        return await sync_state.links_by_customer(connection, [customer_id])
