"""The sync engine end to end against the HubSpot sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace as change
from decimal import Decimal

import pytest

from app.hubspot.errors import HubSpotTransportError
from app.hubspot.models import BatchResult, UpsertInput
from app.store.models import Conflict, EntityLink, FieldState, SyncLog
from app.store.sync_config import load_rules, replace_rules
from app.sync.core.jobs import EntityType, JobDirection, OutcomeStatus
from app.sync.core.rules import Authority
from tests.conftest import Database
from tests.syncenv import SyncEnv, rows, sync_env


@pytest.fixture
async def env(db: Database) -> AsyncIterator[SyncEnv]:
    async with sync_env(db) as environment:
        yield environment


async def test_a_new_customer_becomes_a_company_with_every_property(env: SyncEnv) -> None:
    customer_id = await env.add_customer(
        ban="ZT-487392012",
        company_name="Acme Telecom Ltd",
        credit_limit=Decimal("10000.00"),
        current_balance=Decimal("1234.56"),
        contact={"email": "billing@acme.com"},
    )
    [outcome] = await env.sync(customer_id)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert outcome.result is not None
    assert outcome.result["outcome"] == "created"
    company_id = outcome.result["hubspot_company_id"]
    properties = env.company(company_id)
    assert properties["warp_ban"] == "ZT-487392012"
    assert properties["name"] == "Acme Telecom Ltd"
    assert properties["domain"] == "acme.com"
    assert properties["warp_status"] == "ACTIVE"
    assert properties["warp_customer_type"] == "POSTPAID"
    assert Decimal(properties["warp_credit_limit"]) == Decimal("10000")
    assert Decimal(properties["warp_current_balance"]) == Decimal("1234.56")
    assert (
        properties["warp_services_voice"],
        properties["warp_services_messaging"],
        properties["warp_services_data"],
    ) == ("true", "false", "true")
    customer = await env.customer(customer_id)
    assert customer["external_ids"] == {"hubspot_company_id": company_id}
    [link] = await rows(env.db, EntityLink, EntityLink.warp_customer_id == customer_id)
    assert (link.hubspot_company_id, link.state) == (company_id, "active")
    states = await rows(env.db, FieldState, FieldState.warp_customer_id == customer_id)
    assert {s.field: s.base_value for s in states}["company_name"] == "Acme Telecom Ltd"
    [entry] = await rows(env.db, SyncLog, SyncLog.warp_customer_id == customer_id)
    assert entry.outcome == "created"
    assert {c["property"] for c in entry.changes} >= {"warp_ban", "name", "domain", "warp_status"}


async def test_a_customer_in_sync_costs_no_write(env: SyncEnv) -> None:
    customer_id = await env.add_customer()
    await env.sync(customer_id)
    env.hubspot.forget()

    [outcome] = await env.sync(customer_id)

    assert outcome.status is OutcomeStatus.DONE
    assert outcome.result is not None
    assert outcome.result["outcome"] == "unchanged"
    assert env.hubspot.updates == []
    assert env.hubspot.upserts == []


async def test_an_update_sends_only_the_changed_property_without_reading(env: SyncEnv) -> None:
    customer_id = await env.add_customer()
    [first] = await env.sync(customer_id)
    assert first.result is not None
    company_id = first.result["hubspot_company_id"]
    await env.warp.write_fields(
        customer_id, {"status": "SUSPENDED", "current_balance": Decimal("99")}
    )
    env.hubspot.forget()

    [outcome] = await env.sync(customer_id)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    [[update]] = env.hubspot.updates
    assert update.id == company_id
    assert set(update.properties) == {"warp_status", "warp_current_balance"}
    assert env.hubspot.reads == [], "only WARP-owned fields changed: no read is needed"
    assert env.company(company_id)["warp_status"] == "SUSPENDED"


async def test_a_two_way_field_change_reads_hubspot_first(env: SyncEnv) -> None:
    customer_id = await env.add_customer()
    [first] = await env.sync(customer_id)
    assert first.result is not None
    company_id = first.result["hubspot_company_id"]
    await env.warp.write_fields(customer_id, {"company_name": "Renamed Ltd"})
    env.hubspot.forget()

    [outcome] = await env.sync(customer_id)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert env.hubspot.reads == [[company_id]]
    assert env.company(company_id)["name"] == "Renamed Ltd"


async def test_crm_edit_of_credit_limit_reaches_warp(env: SyncEnv) -> None:
    customer_id = await env.add_customer(credit_limit=Decimal("1000"))
    [first] = await env.sync(customer_id)
    assert first.result is not None
    company_id = first.result["hubspot_company_id"]
    env.sandbox.edit_as_user(company_id, {"warp_credit_limit": "25000"})

    [outcome] = await env.sync(
        company_id, entity_type=EntityType.COMPANY, direction=JobDirection.TO_WARP
    )

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert outcome.result is not None
    assert outcome.result["warp_written"] == {"credit_limit": "25000"}
    customer = await env.customer(customer_id)
    assert customer["credit_limit"] == Decimal("25000")


async def test_crm_edit_of_a_warp_owned_field_is_put_back(env: SyncEnv) -> None:
    customer_id = await env.add_customer(status="ACTIVE")
    [first] = await env.sync(customer_id)
    assert first.result is not None
    company_id = first.result["hubspot_company_id"]
    env.sandbox.edit_as_user(company_id, {"warp_status": "CLOSED"})

    [outcome] = await env.sync(customer_id, direction=JobDirection.BOTH)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert env.company(company_id)["warp_status"] == "ACTIVE"
    assert (await env.customer(customer_id))["status"] == "ACTIVE"


async def test_an_unknown_customer_fails_with_the_reason(env: SyncEnv) -> None:
    [outcome] = await env.sync("5f1e0d6c-0000-4000-8000-000000000000")
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error == "customer 5f1e0d6c-0000-4000-8000-000000000000 not found in WARP"


class LostAnswer:
    """HubSpot does the upsert, then the answer never arrives (a crash, a cut connection)."""

    def __init__(self, env: SyncEnv) -> None:
        self.env = env

    def __getattr__(self, name: str) -> object:
        return getattr(self.env.hubspot, name)

    async def batch_upsert_companies(
        self, inputs: Sequence[UpsertInput], id_property: str = "warp_ban"
    ) -> BatchResult:
        await self.env.hubspot.batch_upsert_companies(inputs, id_property)
        raise HubSpotTransportError(message="connection reset after the request was sent")


async def test_a_crash_after_hubspots_answer_then_a_retry_gives_one_company(env: SyncEnv) -> None:
    customer_id = await env.add_customer(ban="ZT-555000111")
    real = env.engine.hubspot
    env.engine.hubspot = LostAnswer(env)  # type: ignore[assignment]
    [crashed] = await env.sync(customer_id)
    assert crashed.status is OutcomeStatus.RETRY
    assert len(env.companies_with_ban("ZT-555000111")) == 1

    env.engine.hubspot = real
    [retried] = await env.sync(customer_id)

    assert retried.status is OutcomeStatus.DONE, retried.error
    assert env.companies_with_ban("ZT-555000111") == [retried.result["hubspot_company_id"]]  # type: ignore[index]
    assert (await env.customer(customer_id))["external_ids"]["hubspot_company_id"] == (
        retried.result["hubspot_company_id"]  # type: ignore[index]
    )


async def test_a_company_created_by_hand_with_the_same_ban_is_adopted_not_duplicated(
    env: SyncEnv,
) -> None:
    customer_id = await env.add_customer(ban="ZT-777", company_name="Made In WARP")
    existing = env.sandbox.companies.create(
        {"warp_ban": "ZT-777", "name": "Typed By Sales"}, env.sandbox.user_source(5)
    )

    [outcome] = await env.sync(customer_id)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert outcome.result is not None
    assert outcome.result["hubspot_company_id"] == existing.id
    assert env.companies_with_ban("ZT-777") == [existing.id]


async def test_hubspot_validation_error_fails_that_job_only(env: SyncEnv) -> None:
    # Sales removed an option in HubSpot that WARP still uses: HubSpot refuses that value.
    await env.client.update_property(
        "warp_customer_type",
        {
            "options": [
                {"label": "Prepaid", "value": "PREPAID", "displayOrder": 0, "hidden": False},
                {"label": "Postpaid", "value": "POSTPAID", "displayOrder": 1, "hidden": False},
            ]
        },
    )
    good = await env.add_customer(customer_type="POSTPAID")
    bad = await env.add_customer(customer_type="RESELLER")

    outcomes = {o.job_id: o for o in await env.sync(good, bad)}
    by_status = sorted(o.status.value for o in outcomes.values())

    assert by_status == ["done", "failed"]
    failed = next(o for o in outcomes.values() if o.status is OutcomeStatus.FAILED)
    assert "RESELLER" in (failed.error or ""), failed.error
    assert failed.error_kind == "validation"
    assert env.companies_with_ban((await env.customer(bad))["ban"]) == []


async def test_manual_rule_opens_a_conflict_for_a_person(env: SyncEnv) -> None:
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

    [outcome] = await env.sync(customer_id, direction=JobDirection.BOTH)

    assert outcome.status is OutcomeStatus.DONE
    assert outcome.result is not None
    assert outcome.result["outcome"] == "conflict"
    [conflict] = await rows(env.db, Conflict, Conflict.warp_customer_id == customer_id)
    assert (conflict.field, conflict.state) == ("company_name", "open")
    assert (conflict.warp_value, conflict.hubspot_value) == ("Billing Name", "Sales Name")
    assert env.company(company_id)["name"] == "Sales Name"
    assert (await env.customer(customer_id))["company_name"] == "Billing Name"


async def test_a_batch_s_records_and_its_log_commit_together(env: SyncEnv) -> None:
    # The links and field state a batch settled are written in the transaction of its log
    # and of what follows the batch (its webhook events closed): a failure there leaves none
    # of them half-written, and the job's run again records the sync whole.
    customer_id = await env.add_customer(ban="ZT-555000222")

    async def fails(*_: object) -> None:
        raise RuntimeError("the batch's last statement fails")

    env.engine.after_batch = fails
    with pytest.raises(RuntimeError):
        await env.sync(customer_id)
    assert await rows(env.db, SyncLog.__table__) == []
    assert await rows(env.db, EntityLink.__table__) == []
    # Only WARP's values as first seen (noted before anything could fail): no sync recorded.
    seen = await rows(env.db, FieldState.__table__)
    assert seen != []
    assert all(row.synced_at is None and row.base_value is None for row in seen)
    [company_id] = env.companies_with_ban("ZT-555000222")  # HubSpot was written: first

    env.engine.after_batch = None
    [again] = await env.sync(customer_id)
    assert again.status is OutcomeStatus.DONE, again.error
    assert again.result is not None
    assert again.result["hubspot_company_id"] == company_id  # found, not created twice
    [link] = await rows(env.db, EntityLink.__table__)
    assert link.hubspot_company_id == company_id
    assert len(await rows(env.db, SyncLog.__table__)) == 1
    assert all(row.synced_at is not None for row in await rows(env.db, FieldState.__table__))
