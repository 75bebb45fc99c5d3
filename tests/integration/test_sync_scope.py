"""The sync scope on every path: a customer it leaves out is never created in HubSpot, one
that leaves it keeps its company untouched while neither side's edits are synced, one that
comes back syncs again from its merge base, and reconciliation counts it as out_of_scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from app.store.admin_audit import recent_actions
from app.store.sync_scope import load_scope
from app.sync.core.jobs import EntityType, JobDirection, OutcomeStatus
from app.sync.core.scope import Condition, InvalidScopeError, Op, Scope, scope_from_dicts
from app.sync.operator.actions import change_scope
from tests.conftest import Database
from tests.reconcile_support import items, reconcile, work_queue
from tests.syncenv import SyncEnv, sync_env, synced

NOT_CLOSED = Scope(
    (
        Condition("status", Op.NOT_IN, ("CLOSED",)),
        Condition("customer_type", Op.IN, ("POSTPAID", "RESELLER")),
    )
)


@pytest.fixture
async def env(db: Database) -> AsyncIterator[SyncEnv]:
    async with sync_env(db) as environment:
        yield environment


async def set_scope(env: SyncEnv, scope: Scope) -> None:
    await change_scope(
        env.db.engine,
        scope,
        by="test",
        warp_engine=env.db.engine,
        customers_table=env.db.customers_table,
    )


async def test_a_closed_customer_is_never_created_in_hubspot(env: SyncEnv) -> None:
    await set_scope(env, NOT_CLOSED)
    closed = await env.add_customer(status="CLOSED")
    prepaid = await env.add_customer(customer_type="PREPAID")
    for direction in (JobDirection.TO_HUBSPOT, JobDirection.BOTH):
        outcomes = await env.sync(closed, prepaid, direction=direction)
        assert [o.status for o in outcomes] == [OutcomeStatus.DONE] * 2
        assert [o.result["outcome"] for o in outcomes] == ["out_of_scope"] * 2  # type: ignore[index]
        assert "status is 'CLOSED'" in outcomes[0].result["reason"]  # type: ignore[index]
    assert env.hubspot.upserts == []
    assert env.hubspot.updates == []
    for customer_id in (closed, prepaid):
        ban = (await env.customer(customer_id))["ban"]
        assert env.companies_with_ban(ban) == []
    # In scope, the same kind of customer is created as ever.
    active = await env.add_customer()
    [outcome] = await env.sync(active)
    assert outcome.result["outcome"] == "created"  # type: ignore[index]


async def test_a_customer_leaving_the_scope_is_left_alone_and_syncs_again_on_return(
    env: SyncEnv,
) -> None:
    await set_scope(env, NOT_CLOSED)
    customer_id, company_id = await synced(env, credit_limit=Decimal("1000"))
    await env.warp.write_fields(customer_id, {"status": "CLOSED"})
    company_before = env.company(company_id)

    # Out of scope: a WARP edit is not sent, a CRM edit (its webhook's company job) not applied.
    await env.warp.write_fields(customer_id, {"current_balance": Decimal("99.00")})
    env.sandbox.edit_as_user(company_id, {"warp_credit_limit": "2500"})
    company_edited = env.company(company_id)
    env.hubspot.forget()
    [by_customer] = await env.sync(customer_id, direction=JobDirection.BOTH)
    [by_company] = await env.sync(
        company_id, entity_type=EntityType.COMPANY, direction=JobDirection.TO_WARP
    )
    for outcome in (by_customer, by_company):
        assert outcome.status is OutcomeStatus.DONE
        assert outcome.result["outcome"] == "out_of_scope"  # type: ignore[index]
    assert env.hubspot.updates == []
    assert env.hubspot.upserts == []
    assert env.company(company_id) == company_edited  # nothing written by hubsync
    assert company_edited["warp_status"] == company_before["warp_status"] == "ACTIVE"
    assert env.sandbox.companies.require(company_id).archived is False  # never deleted
    customer = await env.customer(customer_id)
    assert customer["credit_limit"] == Decimal("1000")  # the CRM edit did not reach WARP

    # Back in scope: the next job (even a WARP -> HubSpot one) reads HubSpot and merges both
    # sides' edits from the base.
    await env.warp.write_fields(customer_id, {"status": "ACTIVE"})
    env.hubspot.forget()
    [back] = await env.sync(customer_id, direction=JobDirection.TO_HUBSPOT)
    assert back.status is OutcomeStatus.DONE, back.error
    assert env.hubspot.reads, "a returning customer is read from HubSpot first"
    assert back.result["hubspot_written"] == {"warp_current_balance": "99"}  # type: ignore[index]
    assert back.result["warp_written"] == {"credit_limit": "2500"}  # type: ignore[index]
    assert (await env.customer(customer_id))["credit_limit"] == Decimal("2500")
    assert env.company(company_id)["warp_current_balance"] == "99"


async def test_reconciliation_counts_out_of_scope_and_never_fixes_it(env: SyncEnv) -> None:
    linked, company_id = await synced(env)
    in_scope, _ = await synced(env)
    await set_scope(env, NOT_CLOSED)
    await env.warp.write_fields(linked, {"status": "CLOSED"})
    await env.warp.write_fields(linked, {"company_name": "Renamed while closed"})
    never = await env.add_customer(status="CLOSED")
    run = await reconcile(env, mode="fix")
    assert run.counts["out_of_scope"] == 2
    assert run.counts["in_sync"] == 1
    assert "missing_in_hubspot" not in run.counts
    assert await items(env, run, "out_of_scope") == []  # counted, not an item to act on
    assert all(i["warp_customer_id"] not in (linked, never) for i in await items(env, run))
    await work_queue(env)
    assert env.company(company_id)["name"] != "Renamed while closed"
    assert env.companies_with_ban((await env.customer(never))["ban"]) == []
    assert in_scope


async def test_the_scope_is_validated_against_real_columns_stored_and_audited(
    env: SyncEnv,
) -> None:
    with pytest.raises(InvalidScopeError, match="no column 'colour'"):
        await set_scope(env, Scope((Condition("colour", Op.IN, ("RED",)),)))
    with pytest.raises(InvalidScopeError, match="cannot be compared"):
        await set_scope(env, Scope((Condition("contact", Op.IN, ("x",)),)))
    with pytest.raises(InvalidScopeError) as refused:
        scope_from_dicts([{"column": "status", "op": "like", "values": ["CLOSED"]}])
    assert refused.value.field == "conditions[0].op"
    await set_scope(env, NOT_CLOSED)
    async with env.db.engine.connect() as connection:
        assert await load_scope(connection) == NOT_CLOSED
        [entry, *_] = await recent_actions(connection)
    assert entry.action == "scope.replace"
    assert entry.detail == {"before": [], "after": NOT_CLOSED.to_json()}
