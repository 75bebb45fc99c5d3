"""HubSpot -> WARP end to end: the whole service (worker included) with the built-in sandbox
delivering signed webhooks into hubsync's own webhook route, as in the embedded default."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from app.context import AppContext
from app.main import create_app
from app.sandbox.sandbox import Sandbox
from app.settings import Settings
from app.store.models import EntityLink, SyncJob, SyncLog, WebhookEvent
from app.sync.core.jobs import EntityType, JobDirection, JobSource
from app.warp.schema import customers_table
from tests.conftest import Database
from tests.support import eventually, running_service


@dataclass
class Service:
    db: Database
    context: AppContext
    sandbox: Sandbox

    async def add_customers(self, count: int) -> list[str]:
        table = customers_table(self.db.customers_table)
        rows = [
            {
                "id": f"00000000-0000-4000-8000-{n:012d}",
                "ban": f"ZT-{400000000 + n}",
                "company_name": f"E2E Customer {n}",
                "customer_type": "POSTPAID",
                "status": "ACTIVE",
                "credit_limit": Decimal(1000 + n),
                "current_balance": Decimal("0"),
                "contact": {"email": f"billing@e2e{n}.example"},
                "services": {"voice": {"enabled": True}},
                "external_ids": {},
            }
            for n in range(count)
        ]
        async with self.db.engine.begin() as connection:
            await connection.execute(table.insert(), rows)
        await self.queue([row["id"] for row in rows])
        await eventually(lambda: self._linked(count), timeout=30)
        return [row["id"] for row in rows]

    async def queue(
        self, ids: list[str], direction: JobDirection = JobDirection.TO_HUBSPOT
    ) -> None:
        queue = self.context.queue
        async with self.db.engine.begin() as connection:
            await queue.enqueue_many(
                connection, EntityType.CUSTOMER, ids, source=JobSource.API, direction=direction
            )
        self.context.worker.wake()

    async def _linked(self, count: int) -> bool:
        return (
            await self.scalar(
                select(func.count()).select_from(EntityLink).where(EntityLink.state == "active")
            )
            == count
        )

    async def scalar(self, query: Any) -> Any:
        async with self.db.engine.connect() as connection:
            return await connection.scalar(query)

    async def company_of(self, customer_id: str) -> str:
        return str(
            await self.scalar(
                select(EntityLink.hubspot_company_id).where(
                    EntityLink.warp_customer_id == customer_id
                )
            )
        )

    async def customer(self, customer_id: str) -> dict[str, Any]:
        return (await self.context.warp.fetch_customers([customer_id]))[customer_id]

    def hubspot(self, company_id: str, prop: str) -> str | None:
        return self.sandbox.companies.require(company_id).value(prop)

    async def idle(self) -> bool:
        """No job pending or running and no webhook waiting in the sandbox."""
        busy = await self.scalar(
            select(func.count())
            .select_from(SyncJob)
            .where(SyncJob.state.in_(["pending", "running"]))
        )
        stats = self.sandbox.stats()
        return busy == 0 and stats["webhooks_pending"] == 0 and stats["webhooks_retrying"] == 0

    async def settle(self, timeout: float = 60) -> None:  # noqa: ASYNC109 -- a polling deadline
        """Wait until the service has been idle twice in a row (webhooks of the last writes
        arrive a moment after the writes)."""

        async def twice() -> bool:
            if not await self.idle():
                return False
            await asyncio.sleep(0.4)
            return await self.idle()

        await eventually(twice, timeout=timeout, interval=0.1)


@pytest.fixture
async def service(db: Database) -> AsyncIterator[Service]:
    settings = Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_API_TOKENS": "e2e-token",
            "HUBSPOT_RATE_LIMIT": "1000/1s",  # HubSpot's speed is not what these tests measure
            "HUBSYNC_SANDBOX_RATE_LIMIT": "1000/1s",  # ... so the built-in sandbox's neither
            "HUBSYNC_SCHEDULER": "false",
        }
    )
    async with running_service(create_app(settings)) as (_client, context):
        yield Service(db, context, context.sandbox)


async def test_a_crm_edit_of_credit_limit_reaches_warp(service: Service) -> None:
    [customer_id] = await service.add_customers(1)
    company_id = await service.company_of(customer_id)

    service.sandbox.edit_as_user(company_id, {"warp_credit_limit": "75000"})

    async def in_warp() -> bool:
        return (await service.customer(customer_id))["credit_limit"] == Decimal("75000")

    await eventually(in_warp, timeout=10)
    [event] = [
        e
        for e in await _events(service)
        if e.property_name == "warp_credit_limit" and e.change_source == "CRM_UI"
    ]
    await eventually(lambda: _status(service, event.id, "processed"))


async def test_a_crm_edit_of_warp_status_is_put_back(service: Service) -> None:
    [customer_id] = await service.add_customers(1)
    company_id = await service.company_of(customer_id)

    service.sandbox.edit_as_user(company_id, {"warp_status": "CLOSED"})

    async def put_back() -> bool:
        return service.hubspot(company_id, "warp_status") == "ACTIVE"

    await eventually(put_back, timeout=10)
    await service.settle()
    assert (await service.customer(customer_id))["status"] == "ACTIVE"
    assert service.hubspot(company_id, "warp_status") == "ACTIVE"


async def test_company_name_edited_on_both_sides_goes_to_the_later_change(
    service: Service,
) -> None:
    first, second = await service.add_customers(2)
    # First customer: WARP edits, then a person edits HubSpot a moment later -> HubSpot wins.
    await service.context.warp.write_fields(first, {"company_name": "WARP Name (earlier)"})
    await asyncio.sleep(0.05)
    service.sandbox.edit_as_user(await service.company_of(first), {"name": "CRM Name (later)"})
    await service.sandbox.flush_webhooks()
    # Second customer: a person edits HubSpot while no webhook reaches us, then WARP edits
    # later and the customer is queued -> WARP wins.
    await service.sandbox.set_webhook_target(None)
    service.sandbox.edit_as_user(await service.company_of(second), {"name": "CRM Name (earlier)"})
    await asyncio.sleep(0.05)
    await service.context.warp.write_fields(second, {"company_name": "WARP Name (later)"})
    await service.queue([second], JobDirection.BOTH)
    await service.settle()

    assert (await service.customer(first))["company_name"] == "CRM Name (later)"
    assert service.hubspot(await service.company_of(first), "name") == "CRM Name (later)"
    assert (await service.customer(second))["company_name"] == "WARP Name (later)"
    assert service.hubspot(await service.company_of(second), "name") == "WARP Name (later)"


async def test_duplicated_and_reordered_deliveries_have_one_effect_and_end_latest(
    service: Service,
) -> None:
    [customer_id] = await service.add_customers(1)
    company_id = await service.company_of(customer_id)
    service.sandbox.set_faults(duplicate_webhooks=1.0, reorder_webhooks=True)

    for limit in ("11000", "12000", "13000"):
        service.sandbox.edit_as_user(company_id, {"warp_credit_limit": limit})
        await asyncio.sleep(0.01)
    await service.settle()

    assert (await service.customer(customer_id))["credit_limit"] == Decimal("13000")
    changes = [
        e
        for e in await _events(service)
        if e.property_name == "warp_credit_limit" and e.change_source == "CRM_UI"
    ]
    assert len(changes) == 3, "each change stored once, however often it was delivered"
    assert service.sandbox.stats()["webhook_events_delivered"] > len(await _events(service))


@pytest.mark.slow
async def test_random_edits_on_both_sides_converge_without_ping_pong(service: Service) -> None:
    rng = random.Random(20261128)
    ids = await service.add_customers(20)
    companies = {cid: await service.company_of(cid) for cid in ids}
    await service.settle()
    log_mark = await service.scalar(select(func.coalesce(func.max(SyncLog.id), 0)))
    warp_edits = crm_two_way_edits = crm_one_way_edits = 0

    for step in range(1000):
        customer_id = rng.choice(ids)
        company_id = companies[customer_id]
        roll = rng.random()
        if roll < 0.4:
            field, value = rng.choice(
                [
                    ("company_name", f"WARP name {step}"),
                    ("status", rng.choice(["ACTIVE", "SUSPENDED"])),
                    ("current_balance", Decimal(rng.randint(0, 9999))),
                    ("credit_limit", Decimal(rng.randint(1, 99) * 1000)),
                ]
            )
            await service.context.warp.write_fields(customer_id, {field: value})
            await service.queue([customer_id])
            warp_edits += 1
        elif roll < 0.8:
            prop, value = rng.choice(
                [
                    ("name", f"CRM name {step}"),
                    ("warp_credit_limit", str(rng.randint(1, 99) * 1000)),
                ]
            )
            service.sandbox.edit_as_user(company_id, {prop: value})
            crm_two_way_edits += 1
        else:
            service.sandbox.edit_as_user(company_id, {"warp_status": f"HAND-EDITED-{step}"})
            crm_one_way_edits += 1
        if step % 25 == 0:
            await asyncio.sleep(0.02)
    await service.settle(timeout=120)

    writes = await _hubsync_writes(service, after_id=log_mark)
    to_hubspot = sum(1 for w in writes if w == "hubspot")
    to_warp = sum(1 for w in writes if w == "warp")
    # Every write hubsync made answers a real change: WARP edits go out at most once each,
    # a hand edit of a WARP-owned property is put back at most once, and only hand edits of
    # two-way properties come into WARP. Ping-pong would blow through these bounds (and never
    # let the service go idle).
    print(
        f"edits: WARP {warp_edits}, CRM two-way {crm_two_way_edits}, CRM one-way "
        f"{crm_one_way_edits}; hubsync wrote HubSpot {to_hubspot}, WARP {to_warp}"
    )
    assert 0 < to_warp <= crm_two_way_edits
    assert 0 < to_hubspot <= warp_edits + crm_one_way_edits

    # Converged: every field agrees, and one more full sync finds nothing to do.
    log_mark = await service.scalar(select(func.coalesce(func.max(SyncLog.id), 0)))
    await service.queue(ids, JobDirection.BOTH)
    await service.settle()
    rounds = await _recent_outcomes(service, log_mark)
    assert rounds
    assert set(rounds) == {"unchanged"}, rounds
    for customer_id in ids:
        customer = await service.customer(customer_id)
        company_id = companies[customer_id]
        assert service.hubspot(company_id, "name") == customer["company_name"]
        assert (
            Decimal(service.hubspot(company_id, "warp_credit_limit") or "0")
            == customer["credit_limit"]
        )
        assert service.hubspot(company_id, "warp_status") == customer["status"]


async def _events(service: Service) -> list[Any]:
    async with service.db.engine.connect() as connection:
        return list(await connection.execute(select(WebhookEvent)))


async def _status(service: Service, event_id: int, status: str) -> bool:
    return (
        await service.scalar(select(WebhookEvent.status).where(WebhookEvent.id == event_id))
        == status
    )


async def _hubsync_writes(service: Service, after_id: int) -> list[str]:
    """The side of every field write hubsync logged after log entry `after_id`."""
    async with service.db.engine.connect() as connection:
        rows = await connection.execute(select(SyncLog.changes).where(SyncLog.id > after_id))
        return [change["target"] for (changes,) in rows for change in changes or ()]


async def _recent_outcomes(service: Service, after_id: int) -> list[str]:
    async with service.db.engine.connect() as connection:
        rows = await connection.execute(select(SyncLog.outcome).where(SyncLog.id > after_id))
        return [outcome for (outcome,) in rows]
