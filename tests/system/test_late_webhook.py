"""A CRM edit overwritten mid-sync comes back, though its webhook comes after another sync of
the company has read it: through two running `hubsync serve` processes and a `hubsync sandbox`,
observed from outside (SQL on WARP, the sandbox's control API).

HubSpot has no compare-and-set: a person's rename made after a sync read the company and
before its write lands is overwritten by that write, and survives only in its webhook. Here
the service the sandbox delivers to (A) is down while that happens, so the webhook is retried;
meanwhile another CRM edit, delivered once A is back, makes the other service (B) or A read the
company, which then shows only hubsync's value. Then the retried webhook arrives. Until
2026-12-08 that late webhook was taken for old news and the rename was lost on both sides.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.chaos.harness import AUTH, Cluster, cluster, stop
from tests.conftest import _libpq

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.system]

BAN = "ZT-820000001"
SLOW_WRITES = {"latency_model": {"batch_write": {"mean_ms": 2500, "p99_ms": 3000}}}


def warp(database_url: str, sql: str, *args: Any) -> Any:
    with psycopg.connect(_libpq(database_url)) as connection:
        return connection.execute(sql, args).fetchone()


async def until(check: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {within} s (last: {last!r})")


class Scene:
    def __init__(self, running: Cluster, database_url: str) -> None:
        assert running.sandbox is not None
        self.running, self.database_url = running, database_url
        self.sandbox = running.sandbox.url
        self.http = httpx.AsyncClient(timeout=10)

    async def company(self) -> dict[str, Any] | None:
        answer = await self.http.get(f"{self.sandbox}/_sandbox/companies")
        for company in answer.json()["results"]:
            if company["properties"].get("warp_ban") == BAN:
                return company  # type: ignore[no-any-return]
        return None

    async def name_in_hubspot(self) -> str | None:
        company = await self.company()
        return company["properties"].get("name") if company else None

    async def edit_as_user(self, company_id: str, properties: dict[str, str]) -> None:
        answer = await self.http.patch(
            f"{self.sandbox}/_sandbox/companies/{company_id}",
            json={"properties": properties, "userId": 7},
        )
        assert answer.status_code == 200, answer.text

    async def write_in_flight(self, since: float) -> bool:
        answer = (await self.http.get(f"{self.sandbox}/_sandbox/requests")).json()
        return any(
            "/batch/update" in r["path"] and r["answered"] is None and r["at"] >= since
            for r in answer["requests"]
        )

    async def deliveries_of(self, value: str) -> list[dict[str, Any]]:
        """The sandbox's delivery attempts of the event that set `name` to `value`."""
        hooks = (await self.http.get(f"{self.sandbox}/_sandbox/webhooks")).json()
        ids = {
            e["eventId"]
            for e in hooks["events"]
            if e.get("propertyName") == "name" and e.get("propertyValue") == value
        }
        return [d for d in hooks["deliveries"] if ids & set(d["eventIds"])]


async def test_an_overwritten_crm_rename_comes_back_when_its_webhook_is_late(
    postgres_url: str, tmp_path: Path
) -> None:
    customer_id = str(uuid.uuid4())
    warp(
        postgres_url,
        "INSERT INTO accounts.customers (id, ban, company_name, customer_type, status, "
        "credit_limit, current_balance, contact, services, external_ids) "
        "VALUES (%s, %s, 'First Name', 'POSTPAID', 'ACTIVE', 1000, 0, %s, %s, %s) RETURNING id",
        customer_id,
        BAN,
        Jsonb({"email": "billing@late.example"}),
        Jsonb({"voice": {"enabled": True}}),
        Jsonb({}),
    )
    async with cluster(postgres_url, tmp_path) as running:
        scene = Scene(running, postgres_url)
        a, b = running.services["a"], running.services["b"]
        queued = await scene.http.post(
            f"{b.url}/v1/sync/customers/{customer_id}/queue", headers=AUTH
        )
        assert queued.status_code == 202, queued.text
        company = await until(scene.company, 30, "the company created")
        await asyncio.sleep(1.0)  # the creation's own webhooks handled

        # A is down: HubSpot's webhooks fail and are retried (1 s, 2 s, 4 s, 8 s, ...).
        await stop(a)
        await scene.http.put(f"{scene.sandbox}/_sandbox/faults", json=SLOW_WRITES)
        now = (await scene.http.get(f"{scene.sandbox}/_sandbox/requests")).json()["now"]
        warp(
            postgres_url,
            "UPDATE accounts.customers SET company_name = 'Renamed In WARP', updated_at = now() "
            "WHERE id = %s RETURNING id",
            customer_id,
        )
        queued = await scene.http.post(
            f"{b.url}/v1/sync/customers/{customer_id}/queue", headers=AUTH
        )
        assert queued.status_code == 202, queued.text
        # B read the company and its write is on its way: a person renames it meanwhile.
        await until(lambda: scene.write_in_flight(now), 30, "B's write of the WARP rename")
        await scene.edit_as_user(company["id"], {"name": "Renamed In CRM"})
        await until(
            lambda: _equals(scene.name_in_hubspot(), "Renamed In WARP"),
            30,
            "the write landed over the person's rename (HubSpot has no compare-and-set)",
        )
        await scene.http.put(f"{scene.sandbox}/_sandbox/faults", json={})
        # The rename's webhook has failed four times: its next try is 8 s away.
        await until(
            lambda: _at_least(scene.deliveries_of("Renamed In CRM"), 4), 30, "four failed tries"
        )
        assert not any(d["ok"] for d in await scene.deliveries_of("Renamed In CRM"))

        # A is back. Another CRM edit is delivered at once, and its sync reads the company,
        # which shows hubsync's rename only.
        await running.start_service("a", a.port)
        await scene.edit_as_user(company["id"], {"warp_credit_limit": "5000"})
        await until(
            lambda: _warp_credit_is(postgres_url, customer_id, Decimal(5000)),
            30,
            "the credit limit edit synced to WARP",
        )
        assert not any(d["ok"] for d in await scene.deliveries_of("Renamed In CRM")), (
            "the rename's webhook came before the other sync: this run did not test the case"
        )

        # The late webhook arrives.
        flushed = await scene.http.post(f"{scene.sandbox}/_sandbox/webhooks/flush")
        assert flushed.status_code == 200, flushed.text
        await until(
            lambda: _warp_name_is(postgres_url, customer_id, "Renamed In CRM"),
            30,
            "the person's rename, later than WARP's, in WARP",
        )
        assert await scene.name_in_hubspot() == "Renamed In CRM"
        await scene.http.aclose()


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


async def _at_least(items: Awaitable[list[Any]], count: int) -> bool:
    return len(await items) >= count


async def _warp_credit_is(database_url: str, customer_id: str, expected: Decimal) -> bool:
    row = warp(
        database_url, "SELECT credit_limit FROM accounts.customers WHERE id = %s", customer_id
    )
    return bool(row and row[0] == expected)


async def _warp_name_is(database_url: str, customer_id: str, expected: str) -> bool:
    row = warp(
        database_url, "SELECT company_name FROM accounts.customers WHERE id = %s", customer_id
    )
    return bool(row and row[0] == expected)
