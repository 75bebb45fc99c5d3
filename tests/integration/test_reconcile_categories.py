"""The full reconciliation against the sandbox, one seeded case per category: each is found
once, in its category, with the right values; a dry run touches nothing; fix converges."""

from __future__ import annotations

from decimal import Decimal

from app.sandbox.sandbox import Sandbox
from app.store import sync_state
from app.store.queue import QueueRepository
from app.sync.core.jobs import JobSource
from tests.conftest import Database
from tests.reconcile_support import (
    items,
    reconcile,
    snapshot,
    sql_update_customer,
    work_queue,
)
from tests.syncenv import SyncEnv, sync_env

CRM_USER = Sandbox.user_source(7)


async def synced(env: SyncEnv, count: int = 1) -> list[str]:
    """Customers created in WARP and synced to HubSpot (linked, in sync)."""
    ids = [await env.add_customer() for _ in range(count)]
    await env.sync(*ids)
    return ids


async def link_of(env: SyncEnv, customer_id: str) -> str:
    async with env.db.engine.connect() as connection:
        link = (await sync_state.links_by_customer(connection, [customer_id]))[customer_id]
    assert link.hubspot_company_id is not None
    return link.hubspot_company_id


async def test_in_sync_pairs_are_counted_and_not_itemised(db: Database) -> None:
    async with sync_env(db) as env:
        await synced(env, 3)
        run = await reconcile(env)
        assert run.counts == {"in_sync": 3}
        assert await items(env, run) == []


async def test_drift_per_field_with_both_values_and_the_rules_decision(db: Database) -> None:
    async with sync_env(db) as env:
        crm_edited, sql_edited = await synced(env, 2)
        env.sandbox.companies.update(
            await link_of(env, crm_edited), {"warp_status": "SUSPENDED"}, CRM_USER
        )
        await sql_update_customer(env, sql_edited, credit_limit=Decimal("5000"))
        run = await reconcile(env)
        assert run.counts == {"drift": 2}
        found = {item["warp_customer_id"]: item for item in await items(env, run, "drift")}
        assert set(found) == {crm_edited, sql_edited}
        [status] = found[crm_edited]["fields"]
        assert (status["field"], status["warp"], status["hubspot"]) == (
            "status",
            "ACTIVE",
            "SUSPENDED",
        )
        assert status["decision"] == "WRITE_HUBSPOT"  # WARP -> HubSpot only: WARP's wins back
        [limit] = found[sql_edited]["fields"]
        assert (limit["field"], limit["warp"], limit["hubspot"]) == ("credit_limit", "5000", "1000")
        assert limit["decision"] == "WRITE_HUBSPOT"  # changed in WARP only
        assert found[sql_edited]["action"] == "sync"
        assert found[sql_edited]["hubspot_company_id"] == await link_of(env, sql_edited)


async def test_customer_missing_in_hubspot(db: Database) -> None:
    async with sync_env(db) as env:
        await synced(env)
        missing = await env.add_customer()
        run = await reconcile(env)
        assert run.counts == {"in_sync": 1, "missing_in_hubspot": 1}
        [item] = await items(env, run)
        assert item["category"] == "missing_in_hubspot"
        assert item["warp_customer_id"] == missing
        assert item["hubspot_company_id"] is None
        assert item["action"] == "create"


async def test_company_with_a_customers_ban_but_no_link_is_adopted(db: Database) -> None:
    async with sync_env(db) as env:
        customer = await env.add_customer(company_name="Adoptee Ltd")
        ban = (await env.customer(customer))["ban"]
        company = env.sandbox.companies.create({"name": "Adoptee Ltd", "warp_ban": ban}, CRM_USER)
        run = await reconcile(env)
        assert run.counts["adopt"] == 1
        assert "missing_in_hubspot" not in run.counts  # the customer was met through its ban
        [item] = await items(env, run, "adopt")
        assert (item["warp_customer_id"], item["hubspot_company_id"]) == (customer, company.id)
        assert item["warp_ban"] == ban


async def test_company_whose_ban_matches_no_customer_is_an_orphan(db: Database) -> None:
    async with sync_env(db) as env:
        await synced(env)
        company = env.sandbox.companies.create({"name": "Ghost", "warp_ban": "ZT-999"}, CRM_USER)
        env.sandbox.companies.create({"name": "A prospect"}, CRM_USER)  # not hubsync's
        run = await reconcile(env, mode="fix")
        assert run.counts == {"in_sync": 1, "orphan": 1, "unmanaged": 1}
        [item] = await items(env, run, "orphan")
        assert (item["hubspot_company_id"], item["warp_ban"]) == (company.id, "ZT-999")
        assert item["job_id"] is None  # reported, never deleted
        assert env.sandbox.companies.find(company.id) is not None


async def test_second_company_for_one_customer_is_a_duplicate(db: Database) -> None:
    async with sync_env(db) as env:
        [customer] = await synced(env)
        ban = (await env.customer(customer))["ban"]
        first = await link_of(env, customer)
        # Someone blanked the ban on the linked company and made a second one with it.
        env.sandbox.companies.update(first, {"warp_ban": ""}, CRM_USER)
        second = env.sandbox.companies.create({"name": "Again", "warp_ban": ban}, CRM_USER)
        run = await reconcile(env)
        assert run.counts["duplicate"] == 1
        [item] = await items(env, run, "duplicate")
        assert (item["warp_customer_id"], item["hubspot_company_id"]) == (customer, second.id)
        assert item["action"] == "merge_companies"
        assert first in item["detail"]
        [drift] = await items(env, run, "drift")  # the linked one lost its ban: drift
        assert drift["hubspot_company_id"] == first


async def test_link_to_an_archived_or_merged_company_needs_repair(db: Database) -> None:
    async with sync_env(db) as env:
        archived, merged, other = await synced(env, 3)
        env.sandbox.companies.archive(await link_of(env, archived), CRM_USER)
        survivor = env.sandbox.companies.merge(
            await link_of(env, other), await link_of(env, merged), CRM_USER
        )
        run = await reconcile(env)
        assert run.counts == {"repair": 3}  # no duplicate, no orphan for the survivor
        repairs = {item["warp_customer_id"]: item for item in await items(env, run, "repair")}
        assert set(repairs) == {archived, merged, other}
        assert repairs[archived]["action"] == "restore_or_relink"
        # Two customers' companies became one: the engine holds both for a person.
        assert repairs[other]["action"] == "review"
        assert repairs[merged]["action"] == "review"
        assert "relink" in repairs[merged]["detail"]
        assert {repairs[other]["hubspot_company_id"], repairs[merged]["hubspot_company_id"]} == {
            survivor.id
        }


async def test_open_conflicts_are_reported(db: Database) -> None:
    async with sync_env(db) as env:
        [customer] = await synced(env)
        async with db.engine.begin() as connection:
            await sync_state.open_conflict(
                connection,
                {"warp_customer_id": customer, "field": "company_name", "reason": "manual"},
            )
        run = await reconcile(env)
        assert run.counts == {"conflict": 1}
        [item] = await items(env, run, "conflict")
        assert "company_name" in item["detail"]


async def test_dry_run_writes_nothing_anywhere(db: Database) -> None:
    async with sync_env(db) as env:
        [drifted] = await synced(env)
        await sql_update_customer(env, drifted, status="SUSPENDED")
        await env.add_customer()  # missing in HubSpot
        ban = (await env.customer(await env.add_customer()))["ban"]
        env.sandbox.companies.create({"name": "Adopt me", "warp_ban": ban}, CRM_USER)
        before, writes = await snapshot(env), env.sandbox.stats()["writes"]
        run = await reconcile(env, mode="dry_run")
        assert run.counts == {"drift": 1, "missing_in_hubspot": 1, "adopt": 1}
        assert env.sandbox.stats()["writes"] == writes
        assert await snapshot(env) == before
        assert run.jobs_created == 0


async def test_fix_queues_through_the_engine_and_converges(db: Database) -> None:
    async with sync_env(db) as env:
        drifted, merged, other = await synced(env, 3)
        await sql_update_customer(env, drifted, credit_limit=Decimal("7500"))
        # A person merged a stray CRM company into one customer's company (the sync follows),
        # and two customers' companies into one (that needs a person).
        stray = env.sandbox.companies.create({"name": "Stray"}, CRM_USER)
        env.sandbox.companies.merge(await link_of(env, merged), stray.id, CRM_USER)
        [twin] = await synced(env)
        env.sandbox.companies.merge(await link_of(env, other), await link_of(env, twin), CRM_USER)
        missing = await env.add_customer()
        ban = (await env.customer(adoptee := await env.add_customer()))["ban"]
        env.sandbox.companies.create({"name": "Adopt me", "warp_ban": ban}, CRM_USER)
        run = await reconcile(env, mode="fix")
        found = await items(env, run)
        fixable = [i for i in found if i["job_id"] is not None]
        assert {i["warp_customer_id"] for i in fixable} == {drifted, merged, missing, adoptee}
        review = {i["warp_customer_id"] for i in found if i["job_id"] is None}
        assert review == {other, twin}  # two customers, one company: for a person
        assert run.jobs_created == 4
        jobs = [await QueueRepository(db.engine).get(i["job_id"]) for i in fixable]
        assert {job.source for job in jobs if job} == {JobSource.RECONCILIATION}
        assert await work_queue(env) == 4
        assert env.company(await link_of(env, drifted))["warp_credit_limit"] == "7500"
        again = await reconcile(env, mode="dry_run")
        assert again.counts == {"in_sync": 4, "repair": 2}
