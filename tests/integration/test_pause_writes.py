"""A pause pauses every write to its side, whatever path the write would take: the worker for
a job of any direction, a job claimed just before the pause, the catch-up's jobs, a
reconciliation fix and a conflict resolution. While outbound is paused nothing is written to
HubSpot; while inbound is paused nothing is written to WARP. The other side is still written,
what was held waits in the queue for the resume, and it is applied then."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace as change
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.store import sync_state
from app.store.models import Conflict
from app.store.pauses import pause_direction, resume_direction
from app.store.queue import QueueRepository
from app.store.sync_config import load_rules, replace_rules
from app.sync.core.jobs import EntityType, JobDirection, OutcomeStatus
from app.sync.core.rules import Authority
from app.sync.operator.resolution import Choice, ResolutionError, ResolveServices, resolve_conflict
from app.warp.schema import customers_table
from tests.conftest import Database
from tests.integration.test_catchup import catchup
from tests.integration.test_job_api import add_customers
from tests.integration.test_reconcile_categories import link_of
from tests.integration.test_relink_api import held_customer
from tests.reconcile_support import reconcile, sql_update_customer, work_queue
from tests.support import api_only_settings, running_service
from tests.syncenv import SyncEnv, rows, sync_env


@pytest.fixture
async def env(db: Database) -> AsyncIterator[SyncEnv]:
    async with sync_env(db) as environment:
        yield environment


async def pause(env: SyncEnv, direction: str) -> None:
    async with env.db.engine.begin() as connection:
        await pause_direction(connection, direction, by="test", reason="pause test")


async def resume(env: SyncEnv, direction: str) -> None:
    async with env.db.engine.begin() as connection:
        await resume_direction(connection, direction)


async def changed_on_both_sides(env: SyncEnv) -> tuple[str, str]:
    """A synced customer, then changed on both sides: WARP's status and credit limit by SQL
    (the credit limit is two-way: a sync must read the company), the name in the CRM."""
    customer_id = await env.add_customer(company_name="Before Ltd")
    [first] = await env.sync(customer_id)
    assert first.status is OutcomeStatus.DONE, first.error
    company_id = await link_of(env, customer_id)
    await asyncio.sleep(0.01)
    await sql_update_customer(
        env,
        customer_id,
        status="SUSPENDED",
        credit_limit=Decimal("5000"),
        updated_at=datetime.now(UTC),
    )
    await asyncio.sleep(0.01)
    env.sandbox.edit_as_user(company_id, {"name": "CRM Name Ltd"})
    env.hubspot.forget()
    return customer_id, company_id


def hubspot_writes(env: SyncEnv) -> int:
    return sum(map(len, env.hubspot.updates)) + sum(map(len, env.hubspot.upserts))


async def waiting(env: SyncEnv, customer_id: str) -> str | None:
    """The direction of the customer's pending job, if it has one."""
    queue = QueueRepository(env.db.engine)
    jobs = await queue.jobs_for(EntityType.CUSTOMER, customer_id)
    pending = [job.direction for job in jobs if job.state == "pending"]
    return pending[0] if pending else None


async def outbound_untouched(env: SyncEnv, company_id: str) -> None:
    company = env.company(company_id)
    assert (company["warp_status"], company["warp_credit_limit"]) == ("ACTIVE", "1000")
    assert hubspot_writes(env) == 0, "something was written to HubSpot while outbound is paused"


async def outbound_applied(env: SyncEnv, company_id: str) -> None:
    company = env.company(company_id)
    assert company["warp_status"] == "SUSPENDED"
    assert Decimal(company["warp_credit_limit"]) == Decimal("5000")


# -- the worker, for every job direction ------------------------------------------------


async def test_outbound_paused_a_company_job_writes_warp_and_holds_hubspot(env: SyncEnv) -> None:
    """The issue's case: a company job (inbound, from a webhook or the catch-up) for a
    customer WARP also changed pushed WARP's status to HubSpot while outbound was paused."""
    customer_id, company_id = await changed_on_both_sides(env)
    await pause(env, "outbound")

    [outcome] = await env.sync(
        company_id, entity_type=EntityType.COMPANY, direction=JobDirection.TO_WARP
    )

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    await outbound_untouched(env, company_id)
    assert (await env.customer(customer_id))["company_name"] == "CRM Name Ltd"  # inbound runs
    assert await waiting(env, customer_id) == JobDirection.TO_HUBSPOT.value
    assert await work_queue(env) == 0  # the held part waits while outbound is paused
    await outbound_untouched(env, company_id)

    await resume(env, "outbound")
    assert await work_queue(env) == 1
    await outbound_applied(env, company_id)
    assert env.company(company_id)["name"] == "CRM Name Ltd"
    assert await waiting(env, customer_id) is None


async def test_inbound_paused_a_customer_job_writes_hubspot_and_holds_warp(env: SyncEnv) -> None:
    """The issue's other case: an outbound job that read the company (a two-way field
    changed) wrote the CRM's new name into WARP while inbound was paused."""
    customer_id, company_id = await changed_on_both_sides(env)
    await pause(env, "inbound")

    [outcome] = await env.sync(customer_id, direction=JobDirection.TO_HUBSPOT)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    await outbound_applied(env, company_id)  # outbound runs
    assert (await env.customer(customer_id))["company_name"] == "Before Ltd"
    assert await waiting(env, customer_id) == JobDirection.TO_WARP.value
    assert await work_queue(env) == 0
    assert (await env.customer(customer_id))["company_name"] == "Before Ltd"

    await resume(env, "inbound")
    assert await work_queue(env) == 1
    assert (await env.customer(customer_id))["company_name"] == "CRM Name Ltd"
    assert env.company(company_id)["name"] == "CRM Name Ltd"


@pytest.mark.parametrize("paused", ["outbound", "inbound"])
async def test_a_job_claimed_before_the_pause_writes_nothing_to_that_side(
    env: SyncEnv, paused: str
) -> None:
    """The engine asks about pauses when it writes, not only the claim when it hands out
    jobs: a job already running when the operator pauses (a worker's, sync now's) holds too."""
    customer_id, company_id = await changed_on_both_sides(env)
    held = JobDirection.TO_HUBSPOT if paused == "outbound" else JobDirection.TO_WARP
    await pause(env, paused)

    [outcome] = await env.sync(customer_id, direction=held)  # as if claimed a moment ago

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    if paused == "outbound":
        await outbound_untouched(env, company_id)
        assert (await env.customer(customer_id))["company_name"] == "CRM Name Ltd"
    else:
        await outbound_applied(env, company_id)
        assert (await env.customer(customer_id))["company_name"] == "Before Ltd"
    assert await waiting(env, customer_id) == held.value
    await resume(env, paused)
    assert await work_queue(env) == 1
    await outbound_applied(env, company_id)
    assert (await env.customer(customer_id))["company_name"] == "CRM Name Ltd"


@pytest.mark.parametrize("paused", ["outbound", "inbound"])
async def test_a_job_going_both_ways_writes_the_open_side_and_holds_the_other(
    env: SyncEnv, paused: str
) -> None:
    customer_id, company_id = await changed_on_both_sides(env)
    await pause(env, paused)
    async with env.db.engine.begin() as connection:
        await QueueRepository(env.db.engine).enqueue(
            connection, EntityType.CUSTOMER, customer_id, source="operator", direction="both"
        )

    assert await work_queue(env) == 1  # no longer held whole: the open side is written

    if paused == "outbound":
        await outbound_untouched(env, company_id)
        assert (await env.customer(customer_id))["company_name"] == "CRM Name Ltd"
        assert await waiting(env, customer_id) == JobDirection.TO_HUBSPOT.value
    else:
        await outbound_applied(env, company_id)
        assert (await env.customer(customer_id))["company_name"] == "Before Ltd"
        assert await waiting(env, customer_id) == JobDirection.TO_WARP.value
    await resume(env, paused)
    assert await work_queue(env) == 1
    await outbound_applied(env, company_id)
    assert (await env.customer(customer_id))["company_name"] == "CRM Name Ltd"


async def test_a_new_customer_is_not_created_in_hubspot_while_outbound_is_paused(
    env: SyncEnv,
) -> None:
    customer_id = await env.add_customer()
    await pause(env, "outbound")

    [outcome] = await env.sync(customer_id, direction=JobDirection.BOTH)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert hubspot_writes(env) == 0
    assert env.companies_with_ban((await env.customer(customer_id))["ban"]) == []
    assert (await env.customer(customer_id))["external_ids"] in ({}, None)
    await resume(env, "outbound")
    assert await work_queue(env) == 1
    [company_id] = env.companies_with_ban((await env.customer(customer_id))["ban"])
    assert (await env.customer(customer_id))["external_ids"]["hubspot_company_id"] == company_id


# -- the catch-up and the reconciliation fix ----------------------------------------------


@pytest.mark.parametrize("paused", ["outbound", "inbound"])
async def test_the_catch_ups_jobs_hold_the_paused_side(env: SyncEnv, paused: str) -> None:
    passes = catchup(env)
    await passes()  # the first pass sets the watermarks
    customer_id, company_id = await changed_on_both_sides(env)
    env.sandbox.set_faults(drop_webhooks=1.0)
    await pause(env, paused)

    result = await passes()
    assert (result.hubspot, result.warp) == (1, 1)
    await work_queue(env)

    if paused == "outbound":
        await outbound_untouched(env, company_id)
        assert (await env.customer(customer_id))["company_name"] == "CRM Name Ltd"
    else:
        await outbound_applied(env, company_id)
        assert (await env.customer(customer_id))["company_name"] == "Before Ltd"
    await resume(env, paused)
    await work_queue(env)
    await outbound_applied(env, company_id)
    assert (await env.customer(customer_id))["company_name"] == "CRM Name Ltd"


@pytest.mark.parametrize("paused", ["outbound", "inbound"])
async def test_a_reconciliation_fix_holds_the_paused_side(env: SyncEnv, paused: str) -> None:
    customer_id, company_id = await changed_on_both_sides(env)
    await pause(env, paused)

    await reconcile(env, mode="fix")
    await work_queue(env)

    if paused == "outbound":
        await outbound_untouched(env, company_id)
        assert (await env.customer(customer_id))["company_name"] == "CRM Name Ltd"
    else:
        await outbound_applied(env, company_id)
        assert (await env.customer(customer_id))["company_name"] == "Before Ltd"
    await resume(env, paused)
    await work_queue(env)
    await outbound_applied(env, company_id)
    assert (await env.customer(customer_id))["company_name"] == "CRM Name Ltd"


# -- conflict resolution -----------------------------------------------------------------


async def open_conflict(env: SyncEnv) -> tuple[int, str, str]:
    """A customer whose name was changed on both sides under a MANUAL rule."""
    async with env.db.engine.begin() as connection:
        rules = await load_rules(connection)
        manual = [
            change(r, authority=Authority.MANUAL) if r.warp_field == "company_name" else r
            for r in rules
        ]
        await replace_rules(connection, manual, "test")
    customer_id = await env.add_customer(company_name="Original")
    [first] = await env.sync(customer_id)
    company_id = first.result["hubspot_company_id"]  # type: ignore[index]
    env.sandbox.edit_as_user(company_id, {"name": "Sales Name"})
    await env.warp.write_fields(customer_id, {"company_name": "Billing Name"})
    await env.sync(customer_id, direction=JobDirection.BOTH)
    [conflict] = await rows(env.db, Conflict, Conflict.warp_customer_id == customer_id)
    return conflict.id, customer_id, company_id


def services(env: SyncEnv) -> ResolveServices:
    return ResolveServices(env.db.engine, env.warp, QueueRepository(env.db.engine), env.engine)


async def test_a_typed_resolution_is_refused_while_inbound_is_paused(env: SyncEnv) -> None:
    """A typed value is written to WARP first; while inbound is paused that write may not
    happen, so the resolution is refused (the conflict stays open: nothing is lost)."""
    conflict_id, customer_id, company_id = await open_conflict(env)
    await pause(env, "inbound")

    with pytest.raises(ResolutionError, match="paused") as refused:
        await resolve_conflict(services(env), conflict_id, Choice.VALUE, "Typed Ltd", by="a")

    assert refused.value.reason == "paused"
    assert (await env.customer(customer_id))["company_name"] == "Billing Name"
    assert env.company(company_id)["name"] == "Sales Name"
    [conflict] = await rows(env.db, Conflict, Conflict.id == conflict_id)
    assert conflict.state == "open"
    await resume(env, "inbound")
    resolution = await resolve_conflict(
        services(env), conflict_id, Choice.VALUE, "Typed Ltd", by="a"
    )
    assert resolution.outcome is not None
    assert (await env.customer(customer_id))["company_name"] == "Typed Ltd"
    assert env.company(company_id)["name"] == "Typed Ltd"


@pytest.mark.parametrize(("paused", "choice"), [("inbound", "HUBSPOT"), ("outbound", "WARP")])
async def test_a_resolution_toward_the_paused_side_waits_for_the_resume(
    env: SyncEnv, paused: str, choice: str
) -> None:
    conflict_id, customer_id, company_id = await open_conflict(env)
    await pause(env, paused)

    resolution = await resolve_conflict(services(env), conflict_id, Choice(choice), None, by="a")
    await work_queue(env)

    assert resolution.job_id is not None
    assert (await env.customer(customer_id))["company_name"] == "Billing Name"
    assert env.company(company_id)["name"] == "Sales Name"
    await resume(env, paused)
    await work_queue(env)
    expected = "Sales Name" if choice == "HUBSPOT" else "Billing Name"
    assert (await env.customer(customer_id))["company_name"] == expected
    assert env.company(company_id)["name"] == expected


# -- through the API: sync now and the relink ----------------------------------------------

TOKEN = "operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def service(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    settings = api_only_settings(db.env, TOKEN)
    async with running_service(create_app(settings)) as (client, context):
        yield client, context


async def test_sync_now_while_inbound_is_paused_writes_hubspot_only(
    service: tuple[httpx.AsyncClient, Any], db: Database
) -> None:
    client, context = service
    [customer_id] = await add_customers(db, 1)
    first = await client.post(f"/v1/sync/customers/{customer_id}/to-hubspot", headers=AUTH)
    assert first.status_code == 200, first.text
    company_id = first.json()["hubspot_company_id"]
    table = customers_table(db.customers_table)
    async with db.engine.begin() as connection:
        await connection.execute(
            table.update()
            .where(table.c.id == customer_id)
            .values(status="SUSPENDED", credit_limit=Decimal("5000"), updated_at=datetime.now(UTC))
        )
    context.sandbox.edit_as_user(company_id, {"name": "CRM Name Ltd"})
    paused = await client.post("/v1/sync/directions/inbound/pause", headers=AUTH, json={})
    assert paused.status_code == 200

    now = await client.post(f"/v1/sync/customers/{customer_id}/to-hubspot", headers=AUTH)

    assert now.status_code == 200, now.text
    assert now.json()["paused"]["to_warp"] == ["company_name"]
    company = context.sandbox.companies.require(company_id)
    assert company.value("warp_status") == "SUSPENDED"
    warp = await context.warp.fetch_customers([customer_id])
    assert warp[customer_id]["company_name"] == "Co 0"  # nothing written to WARP
    # Every webhook the CRM edit made is delivered before the queue is worked: one arriving
    # later merges into the held WARP job and makes it a job both ways (seen in CI).
    await context.sandbox.flush_webhooks()
    # The CRM edit's webhook queued the customer both ways: that job writes HubSpot and
    # holds WARP too, and the job left waiting goes to WARP only.
    await client.post("/v1/sync/process-queue", headers=AUTH)
    warp = await context.warp.fetch_customers([customer_id])
    assert warp[customer_id]["company_name"] == "Co 0"
    # A webhook delivered late may still queue a job both ways: it too writes HubSpot only.
    for _ in range(5):
        if (await client.post("/v1/sync/process-queue", headers=AUTH)).json()["claimed"] == 0:
            break
    warp = await context.warp.fetch_customers([customer_id])
    assert warp[customer_id]["company_name"] == "Co 0"
    jobs = await context.queue.jobs_for("customer", customer_id)
    assert [j.direction for j in jobs if j.state == "pending"] == ["to_warp"]
    # The job held for WARP is never claimed while inbound is paused. (Asked of that job, not
    # of the queue: a company job of a webhook delivered later still may be due — seen once
    # in CI, where a working of the queue after the loop above claimed one.)
    await client.post("/v1/sync/process-queue", headers=AUTH)
    jobs = await context.queue.jobs_for("customer", customer_id)
    assert [j.direction for j in jobs if j.state == "pending"] == ["to_warp"]
    warp = await context.warp.fetch_customers([customer_id])
    assert warp[customer_id]["company_name"] == "Co 0"

    await client.post("/v1/sync/directions/inbound/resume", headers=AUTH)
    assert (await client.post("/v1/sync/process-queue", headers=AUTH)).json()["done"] >= 1
    warp = await context.warp.fetch_customers([customer_id])
    assert warp[customer_id]["company_name"] == "CRM Name Ltd"


async def test_a_relinked_customer_is_not_written_to_hubspot_while_outbound_is_paused(
    service: tuple[httpx.AsyncClient, Any], db: Database
) -> None:
    client, context = service
    customer_id = await held_customer(db, "ZT-000000072")
    await client.post("/v1/sync/directions/outbound/pause", headers=AUTH, json={})

    split = await client.post(
        f"/v1/sync/customers/{customer_id}/relink", json={"action": "split"}, headers=AUTH
    )
    assert split.status_code == 202, split.text
    await client.post("/v1/sync/process-queue", headers=AUTH)

    def companies() -> list[str]:
        return [
            c.id
            for c in context.sandbox.companies.active()
            if c.value("warp_ban") == "ZT-000000072"
        ]

    assert companies() == []
    await client.post("/v1/sync/directions/outbound/resume", headers=AUTH)
    assert (await client.post("/v1/sync/process-queue", headers=AUTH)).json()["done"] >= 1
    [company_id] = companies()
    warp = await context.warp.fetch_customers([customer_id])
    assert warp[customer_id]["external_ids"]["hubspot_company_id"] == company_id


async def test_the_api_refuses_a_typed_resolution_while_inbound_is_paused(
    service: tuple[httpx.AsyncClient, Any], db: Database
) -> None:
    client, context = service
    [customer_id] = await add_customers(db, 1)
    async with db.engine.begin() as connection:
        await sync_state.open_conflict(
            connection,
            {
                "warp_customer_id": customer_id,
                "hubspot_company_id": "901",
                "field": "company_name",
                "warp_value": "Co 0",
                "hubspot_value": "Sales Co",
                "base_value": "Old Co",
                "reason": "changed on both sides",
            },
        )
    [conflict] = await rows(db, Conflict, Conflict.warp_customer_id == customer_id)
    await client.post("/v1/sync/directions/inbound/pause", headers=AUTH, json={})

    answer = await client.post(
        f"/v1/sync/conflicts/{conflict.id}/resolve",
        json={"choice": "VALUE", "value": "Typed Co"},
        headers=AUTH,
    )

    assert answer.status_code == 409, answer.text
    assert answer.json()["error"] == "paused"
    assert "HubSpot -> WARP is paused" in answer.json()["detail"]
    warp = await context.warp.fetch_customers([customer_id])
    assert warp[customer_id]["company_name"] == "Co 0"
    [still] = await rows(db, Conflict, Conflict.id == conflict.id)
    assert still.state == "open"
