"""Sandbox webhooks: signed like HubSpot, batched, retried, attributed to the right source."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.hubspot.signatures import V3Result, check_v3, verify_v1
from app.sandbox.config import SandboxConfig
from app.sandbox.testing import RunningSandbox, running_sandbox

SECRET = "sandbox-test-secret"
HOOK_URL = "https://hubsync.test/v1/webhooks/hubspot?source=sandbox%3Atest"
V3 = "/crm/v3/objects/companies"
EVENT_FIELDS = {"eventId", "subscriptionId", "portalId", "appId", "occurredAt",
                "subscriptionType", "attemptNumber", "objectId"}  # fmt: skip


@dataclass
class Receiver:
    """A stand-in for hubsync's webhook endpoint that can be told to fail."""

    fail_first: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    calls: int = 0

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.calls += 1
            if self.calls <= self.fail_first:
                return Response(status_code=503)
            self.requests.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        return Starlette(routes=[Route("/v1/webhooks/hubspot", receive, methods=["POST"])])

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for _, body in self.requests for event in json.loads(body)]


async def eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


def config_for(receiver: Receiver, **overrides: Any) -> SandboxConfig:
    settings: dict[str, Any] = {
        "client_secret": SECRET,
        "app_id": "777",
        "portal_id": 99,
        "webhook_url": HOOK_URL,
        "webhook_transport": httpx.ASGITransport(app=receiver.app()),
        "webhook_delay_seconds": 0.01,
        "webhook_retry_base_seconds": 0.01,
    }
    return SandboxConfig(**{**settings, **overrides})


@pytest.fixture
async def hub(receiver: Receiver) -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(config_for(receiver)) as running:
        yield running


async def create(hub: RunningSandbox, **properties: str) -> str:
    response = await hub.client.post(V3, json={"properties": properties})
    assert response.status_code == 201
    company_id: str = response.json()["id"]
    return company_id


async def test_deliveries_are_signed_with_v1_and_v3(
    hub: RunningSandbox, receiver: Receiver
) -> None:
    company_id = await create(hub, name="Acme")
    await eventually(lambda: len(receiver.events) >= 2)
    headers, body = receiver.requests[0]
    assert headers["x-hubspot-signature-version"] == "v1"
    assert verify_v1(SECRET, body, headers["x-hubspot-signature"])
    assert not verify_v1("another-secret", body, headers["x-hubspot-signature"])
    timestamp = headers["x-hubspot-request-timestamp"]
    assert timestamp.isdigit()
    signature = headers["x-hubspot-signature-v3"]
    assert check_v3(SECRET, "POST", HOOK_URL, body, timestamp, signature) is V3Result.VALID
    late = int(timestamp) + 6 * 60 * 1000
    assert check_v3(SECRET, "POST", HOOK_URL, body, timestamp, signature, now_ms=late) is (
        V3Result.STALE
    )
    events = json.loads(body)
    assert isinstance(events, list)
    creation = next(e for e in receiver.events if e["subscriptionType"] == "company.creation")
    assert set(creation) >= EVENT_FIELDS
    assert (creation["objectId"], creation["changeFlag"]) == (int(company_id), "CREATED")
    assert (creation["portalId"], creation["appId"], creation["attemptNumber"]) == (99, 777, 0)
    assert isinstance(creation["occurredAt"], int)
    change = next(e for e in receiver.events if e["subscriptionType"] == "company.propertyChange")
    assert (change["propertyName"], change["propertyValue"]) == ("name", "Acme")
    assert (change["changeSource"], change["sourceId"]) == ("INTEGRATION", "777")


async def test_crm_ui_edits_carry_the_user(hub: RunningSandbox, receiver: Receiver) -> None:
    company_id = await create(hub, name="Acme")
    response = await hub.client.patch(
        f"/_sandbox/companies/{company_id}",
        json={"properties": {"name": "Acme Sales"}, "userId": 7},
    )
    assert response.status_code == 200
    await eventually(lambda: any(e.get("propertyValue") == "Acme Sales" for e in receiver.events))
    event = next(e for e in receiver.events if e.get("propertyValue") == "Acme Sales")
    assert (event["changeSource"], event["sourceId"]) == ("CRM_UI", "userId:7")
    hub.sandbox.edit_as_user(company_id, {"domain": "acme.com"}, user_id=8)
    body = (
        await hub.client.get(f"{V3}/{company_id}", params={"propertiesWithHistory": "name,domain"})
    ).json()
    latest_name = body["propertiesWithHistory"]["name"][0]
    assert (latest_name["sourceType"], latest_name["sourceId"]) == ("CRM_UI", "userId:7")
    assert body["propertiesWithHistory"]["domain"][0]["updatedByUserId"] == 8
    # Writing the same value again is no change and sends no event.
    before = len(hub.sandbox.webhooks.events)
    await hub.client.patch(f"{V3}/{company_id}", json={"properties": {"name": "Acme Sales"}})
    assert len(hub.sandbox.webhooks.events) == before


async def test_batches_hold_at_most_the_batch_size(receiver: Receiver) -> None:
    async with running_sandbox(config_for(receiver, webhook_batch_size=3)) as hub:
        for i in range(4):
            await create(hub, name=f"C{i}")  # two events each
        await eventually(lambda: len(receiver.events) == 8)
        assert all(len(json.loads(body)) <= 3 for _, body in receiver.requests)
        assert len({e["eventId"] for e in receiver.events}) == 8


async def test_failed_deliveries_are_retried_with_attempt_numbers(receiver: Receiver) -> None:
    receiver.fail_first = 2
    async with running_sandbox(config_for(receiver)) as hub:
        await create(hub, name="Acme")
        await eventually(lambda: len(receiver.requests) == 1)
        assert {e["attemptNumber"] for e in receiver.events} == {2}
        stats = hub.sandbox.stats()
        assert (stats["webhooks_failed"], stats["webhooks_delivered"]) == (2, 1)
        listing = (await hub.client.get("/_sandbox/webhooks")).json()
        assert [d["status"] for d in listing["deliveries"]] == [503, 503, 204]


async def test_delivery_gives_up_after_max_attempts(receiver: Receiver) -> None:
    receiver.fail_first = 100
    async with running_sandbox(config_for(receiver, webhook_max_attempts=3)) as hub:
        await create(hub, name="Acme")
        await eventually(lambda: hub.sandbox.stats()["webhooks_abandoned"] == 1)
        assert receiver.calls == 3


async def test_flush_delivers_pending_events_at_once(receiver: Receiver) -> None:
    async with running_sandbox(config_for(receiver, webhook_delay_seconds=30)) as hub:
        await create(hub, name="Acme")
        await asyncio.sleep(0.05)
        assert receiver.requests == []
        flushed = await hub.client.post("/_sandbox/webhooks/flush")
        assert flushed.json() == {"delivered": 1}
        assert len(receiver.events) == 2


async def test_deletion_restore_and_merge_events(hub: RunningSandbox, receiver: Receiver) -> None:
    a = await create(hub, name="A")
    b = await create(hub, name="B")
    await hub.client.delete(f"{V3}/{b}")
    await hub.client.post(f"/_sandbox/companies/{b}/restore")
    merged = (
        await hub.client.post(f"{V3}/merge", json={"primaryObjectId": a, "objectIdToMerge": b})
    ).json()
    kinds = ("company.deletion", "company.restore", "company.merge")
    await eventually(lambda: {e["subscriptionType"] for e in receiver.events} >= set(kinds))
    by_kind = {e["subscriptionType"]: e for e in receiver.events}
    assert by_kind["company.deletion"]["objectId"] == int(b)
    assert by_kind["company.restore"]["objectId"] == int(b)
    merge = by_kind["company.merge"]
    assert merge["primaryObjectId"] == int(a)
    assert merge["mergedObjectIds"] == [int(b)]
    assert merge["newObjectId"] == int(merged["id"])
    assert isinstance(merge["numberOfPropertiesMoved"], int)


async def test_duplicate_and_reordered_deliveries(receiver: Receiver) -> None:
    config = config_for(receiver, webhook_delay_seconds=30)
    async with running_sandbox(config) as hub:
        hub.sandbox.set_faults(duplicate_webhooks=1.0, reorder_webhooks=True, seed=3)
        for i in range(5):
            await create(hub, name=f"C{i}")
        await hub.sandbox.flush_webhooks()
        ids = [e["eventId"] for e in receiver.events]
        assert len(ids) == 20  # every one of the 10 events twice
        assert sorted(set(ids)) == list(range(1, 11))
        assert ids != sorted(ids)
