"""One bad record never holds back the rest, and no edit is lost between read and write
(issue 12, cases 4, 5 and 7): a WARP row the database refuses, a batch HubSpot rejects whole,
and a value changed on either side while a sync is under way — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import CheckConstraint

from app.hubspot.client import HubSpotClient
from app.hubspot.models import BatchResult
from app.hubspot.ratelimit import LocalRateLimiter
from app.sandbox.testing import SANDBOX_BASE_URL, TEST_TOKEN
from app.settings import RateLimit, Secret
from app.store.queue import QueueRepository
from app.sync.core.events import parse_event
from app.sync.core.jobs import JobDirection, JobSource, OutcomeStatus
from app.sync.intake.routing import accept_delivery
from app.warp.schema import customers_table
from tests.conftest import Database
from tests.syncenv import RecordingHubSpot, SyncEnv, job, sync_env, synced


@pytest.fixture
async def env(db: Database) -> AsyncIterator[SyncEnv]:
    async with sync_env(db) as environment:
        yield environment


# -- case 4: one WARP write the database refuses -------------------------------------------------


async def short_names_only(db: Database) -> None:
    """WARP's table with a CHECK: company names of at most 40 characters."""
    table = customers_table(db.customers_table)
    table.append_constraint(
        CheckConstraint("length(company_name) <= 40", name="ck_customers_short_name")
    )
    async with db.engine.begin() as connection:
        await connection.run_sync(table.drop)
        await connection.run_sync(table.create)


async def test_a_row_the_database_refuses_fails_alone_and_for_good(db: Database) -> None:
    await short_names_only(db)
    async with sync_env(db) as env:
        refused, company_refused = await synced(env, company_name="Short Name")
        fine, company_fine = await synced(env, credit_limit=Decimal("1000"))
        new = await env.add_customer()
        env.sandbox.edit_as_user(
            company_refused, {"name": "A Name Far Too Long For The Billing System To Hold"}
        )
        env.sandbox.edit_as_user(company_fine, {"warp_credit_limit": "8000"})

        outcomes = await env.sync(refused, fine, new, direction=JobDirection.BOTH)

        assert outcomes[0].status is OutcomeStatus.FAILED, outcomes[0]
        assert outcomes[0].error_kind == "warp"
        assert "ck_customers_short_name" in (outcomes[0].error or "") or "CHECK" in (
            outcomes[0].error or ""
        ), outcomes[0].error
        assert [o.status for o in outcomes[1:]] == [OutcomeStatus.DONE] * 2, [
            o.error for o in outcomes
        ]
        assert (await env.customer(fine))["credit_limit"] == Decimal("8000")
        created = outcomes[2].result["hubspot_company_id"]  # type: ignore[index]
        assert (await env.customer(new))["external_ids"] == {"hubspot_company_id": created}
        assert (await env.customer(refused))["company_name"] == "Short Name"


# -- case 5: a batch HubSpot rejects whole -------------------------------------------------------


class WholeBatchRejection(httpx.AsyncBaseTransport):
    """In front of the sandbox: a batch write holding a refused value is answered as real
    HubSpot answers it — 400 VALIDATION_ERROR for the whole request, nothing written."""

    def __init__(self, inner: httpx.AsyncBaseTransport, refused: str) -> None:
        self.inner = inner
        self.refused = refused
        self.rejected = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith(
            ("/batch/update", "/batch/upsert", "/batch/create")
        ):
            body = json.loads(await request.aread())
            values = [v for item in body["inputs"] for v in item["properties"].values()]
            if self.refused in values:
                self.rejected += 1
                message = (
                    f'Property values were not valid: [{{"isValid":false,"message":"{self.refused}'
                    ' was not one of the allowed options","error":"INVALID_OPTION",'
                    '"name":"warp_customer_type"}]'
                )
                return httpx.Response(
                    400,
                    json={
                        "status": "error",
                        "message": message,
                        "correlationId": "00000000-0000-0000-0000-000000000000",
                        "category": "VALIDATION_ERROR",
                    },
                )
        return await self.inner.handle_async_request(request)


async def test_a_batch_rejected_whole_fails_only_the_bad_input(env: SyncEnv) -> None:
    rejecting = WholeBatchRejection(env.client._http._transport, refused="RESELLER")
    client = HubSpotClient(
        base_url=SANDBOX_BASE_URL,
        access_token=Secret(TEST_TOKEN),  # the sandbox, like HubSpot, refuses none
        limiter=LocalRateLimiter(RateLimit(1000, 1.0)),
        transport=rejecting,
    )
    env.engine.hubspot = RecordingHubSpot(client)
    good = [await env.add_customer(customer_type="POSTPAID") for _ in range(4)]
    bad = await env.add_customer(customer_type="RESELLER")

    outcomes = await env.sync(*good[:2], bad, *good[2:])

    statuses = [o.status for o in outcomes]
    assert statuses == [OutcomeStatus.DONE] * 2 + [OutcomeStatus.FAILED] + [OutcomeStatus.DONE] * 2
    failed = outcomes[2]
    assert failed.error_kind == "validation"
    assert "Property values were not valid" in (failed.error or "")
    assert "RESELLER" in (failed.error or "")
    assert rejecting.rejected >= 1
    for customer_id in good:
        ban = (await env.customer(customer_id))["ban"]
        assert len(env.companies_with_ban(ban)) == 1
    assert env.companies_with_ban((await env.customer(bad))["ban"]) == []
    await client.aclose()


# -- case 7: an edit made while a sync is under way ----------------------------------------------


class EditsWarpAfterRead:
    """HubSpot as usual; right after the engine's first read, WARP changes a field (billing
    renames the customer) — after the engine read WARP and before it writes it."""

    def __init__(self, env: SyncEnv, customer_id: str, fields: dict[str, Any]) -> None:
        self.env = env
        self.customer_id = customer_id
        self.fields: dict[str, Any] | None = fields

    def __getattr__(self, name: str) -> object:
        return getattr(self.env.hubspot, name)

    async def batch_read_companies(
        self,
        ids: Sequence[str],
        properties: Sequence[str],
        id_property: str | None = None,
        *,
        properties_with_history: Sequence[str] = (),
    ) -> BatchResult:
        result = await self.env.hubspot.batch_read_companies(
            ids, properties, id_property, properties_with_history=properties_with_history
        )
        if self.fields is not None:
            await self.env.warp.write_fields(self.customer_id, self.fields)
            self.fields = None
        return result


async def test_a_warp_change_during_the_sync_is_not_overwritten(env: SyncEnv) -> None:
    customer_id, company_id = await synced(env, company_name="Original")
    env.sandbox.edit_as_user(company_id, {"name": "Sales Name"})
    real = env.engine.hubspot
    env.engine.hubspot = EditsWarpAfterRead(  # type: ignore[assignment]
        env, customer_id, {"company_name": "Billing Name"}
    )

    [outcome] = await env.sync(customer_id, direction=JobDirection.BOTH)
    env.engine.hubspot = real

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert (await env.customer(customer_id))["company_name"] == "Billing Name"
    # Decided again with WARP's newer value: the later change (WARP's) wins on both sides.
    assert env.company(company_id)["name"] == "Billing Name"


class EditsHubSpotBeforeWrite:
    """A person edits the company after the engine read it and before the engine's write."""

    def __init__(self, env: SyncEnv, company_id: str, properties: dict[str, str]) -> None:
        self.env = env
        self.company_id = company_id
        self.properties: dict[str, str] | None = properties
        self.occurred_at_ms = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.env.hubspot, name)

    async def batch_update_companies(self, inputs: Sequence[Any]) -> BatchResult:
        if self.properties is not None:
            await asyncio.sleep(0.005)  # a moment after the engine's read, as a person would
            self.occurred_at_ms = int(time.time() * 1000)
            self.env.sandbox.edit_as_user(self.company_id, self.properties)
            self.properties = None
        return await self.env.hubspot.batch_update_companies(inputs)


async def crm_edit_webhook(
    env: SyncEnv, customer_id: str, company_id: str, prop: str, value: str, *, occurred_at_ms: int
) -> Any:
    """A person's edit of the company arrives as a webhook; the job it queues is run."""
    event = {
        "subscriptionType": "company.propertyChange",
        "objectId": int(company_id),
        "occurredAt": occurred_at_ms,
        "propertyName": prop,
        "propertyValue": value,
        "changeSource": "CRM_UI",
        "sourceId": "userId:1",
    }
    async with env.db.engine.begin() as connection:
        await accept_delivery(
            connection,
            [parse_event(0, event)],
            queue=QueueRepository(env.db.engine),
            app_id=None,
        )
    [outcome] = await env.engine(
        [job(customer_id, direction=JobDirection.BOTH, source=JobSource.WEBHOOK)]
    )
    return outcome


async def test_a_crm_edit_overwritten_by_a_stale_write_comes_back(env: SyncEnv) -> None:
    customer_id, company_id = await synced(env, credit_limit=Decimal("1000"))
    await env.warp.write_fields(customer_id, {"credit_limit": Decimal("2000")})
    editing = EditsHubSpotBeforeWrite(env, company_id, {"warp_credit_limit": "5000"})
    env.engine.hubspot = editing  # type: ignore[assignment]
    [first] = await env.sync(customer_id, direction=JobDirection.BOTH)
    env.engine.hubspot = env.hubspot
    assert first.status is OutcomeStatus.DONE, first.error
    assert env.company(company_id)["warp_credit_limit"] == "2000", "HubSpot has no compare-and-set"

    # The person's edit arrives as a webhook, newer than the engine's read of the company.
    second = await crm_edit_webhook(
        env,
        customer_id,
        company_id,
        "warp_credit_limit",
        "5000",
        occurred_at_ms=editing.occurred_at_ms,
    )

    assert second.status is OutcomeStatus.DONE, second.error
    assert (await env.customer(customer_id))["credit_limit"] == Decimal("5000")
    assert env.company(company_id)["warp_credit_limit"] == "5000"


@pytest.mark.parametrize(
    "case",
    [
        # HubSpot's authority: the person's value wins.
        ("credit_limit", "warp_credit_limit", Decimal("2000"), "5000", Decimal("5000")),
        # The latest change wins: the person renamed after WARP did.
        ("company_name", "name", "Renamed In WARP", "Renamed In CRM", "Renamed In CRM"),
    ],
    ids=["hubspot-authority", "latest-wins"],
)
async def test_an_overwritten_crm_edit_comes_back_when_its_webhook_lands_after_another_sync(
    env: SyncEnv, case: tuple[str, str, object, str, object]
) -> None:
    """The edit's webhook is late (retried, reordered): another sync of the customer reads
    the company first, and sees only hubsync's own value there. The edit still comes back."""
    field, prop, warp_value, crm_value, in_warp = case
    customer_id, company_id = await synced(env, credit_limit=Decimal("1000"))
    await env.warp.write_fields(customer_id, {field: warp_value})
    editing = EditsHubSpotBeforeWrite(env, company_id, {prop: crm_value})
    env.engine.hubspot = editing  # type: ignore[assignment]
    [first] = await env.sync(customer_id, direction=JobDirection.BOTH)
    env.engine.hubspot = env.hubspot
    assert first.status is OutcomeStatus.DONE, first.error
    assert env.company(company_id)[prop] == str(warp_value), "HubSpot has no compare-and-set"

    await env.warp.write_fields(customer_id, {"status": "SUSPENDED"})
    [between] = await env.sync(customer_id, direction=JobDirection.BOTH)
    assert between.status is OutcomeStatus.DONE, between.error
    assert env.company(company_id)["warp_status"] == "SUSPENDED"

    late = await crm_edit_webhook(
        env, customer_id, company_id, prop, crm_value, occurred_at_ms=editing.occurred_at_ms
    )

    assert late.status is OutcomeStatus.DONE, late.error
    assert (await env.customer(customer_id))[field] == in_warp
    assert env.company(company_id)[prop] == crm_value


async def test_a_late_webhook_of_a_crm_edit_a_sync_already_saw_changes_nothing(
    env: SyncEnv,
) -> None:
    """The other side of the window: an edit a sync read (and took into WARP), then a later
    WARP change written to HubSpot, then the edit's webhook. It is old news, not an
    overwritten edit: WARP's later value stays on both sides."""
    customer_id, company_id = await synced(env, credit_limit=Decimal("1000"))
    env.sandbox.edit_as_user(company_id, {"warp_credit_limit": "5000"})
    occurred_at_ms = int(time.time() * 1000)
    [adopted] = await env.sync(customer_id, direction=JobDirection.BOTH)
    assert adopted.status is OutcomeStatus.DONE, adopted.error
    assert (await env.customer(customer_id))["credit_limit"] == Decimal("5000")
    await env.warp.write_fields(customer_id, {"credit_limit": Decimal("7000")})
    [written] = await env.sync(customer_id, direction=JobDirection.BOTH)
    assert written.status is OutcomeStatus.DONE, written.error
    assert env.company(company_id)["warp_credit_limit"] == "7000"

    late = await crm_edit_webhook(
        env, customer_id, company_id, "warp_credit_limit", "5000", occurred_at_ms=occurred_at_ms
    )

    assert late.status is OutcomeStatus.DONE, late.error
    assert (await env.customer(customer_id))["credit_limit"] == Decimal("7000")
    assert env.company(company_id)["warp_credit_limit"] == "7000"


async def test_an_older_crm_edit_whose_webhook_comes_first_is_not_taken_for_overwritten(
    env: SyncEnv,
) -> None:
    """Two CRM renames after hubsync's write; a sync reads the second; the first's webhook
    comes before the second's. It is older than what hubsync saw there: nothing comes back."""
    customer_id, company_id = await synced(env)
    await env.warp.write_fields(customer_id, {"company_name": "Renamed In WARP"})
    [written] = await env.sync(customer_id, direction=JobDirection.BOTH)
    assert written.status is OutcomeStatus.DONE, written.error
    env.sandbox.edit_as_user(company_id, {"name": "CRM Rename 661"})
    first_at_ms = int(time.time() * 1000)
    await asyncio.sleep(0.01)
    env.sandbox.edit_as_user(company_id, {"name": "CRM Rename 671"})
    [read] = await env.sync(customer_id, direction=JobDirection.BOTH)
    assert read.status is OutcomeStatus.DONE, read.error
    assert (await env.customer(customer_id))["company_name"] == "CRM Rename 671"

    late = await crm_edit_webhook(
        env, customer_id, company_id, "name", "CRM Rename 661", occurred_at_ms=first_at_ms
    )

    assert late.status is OutcomeStatus.DONE, late.error
    assert (await env.customer(customer_id))["company_name"] == "CRM Rename 671"
    assert env.company(company_id)["name"] == "CRM Rename 671"
