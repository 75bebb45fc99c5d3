"""The engine under adversity (issue 12): merges of linked companies, values hubsync cannot
read, two jobs for one pair, free-mail domains and customers deleted in WARP — against the
sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace as change
from typing import Any

import pytest

from app.sandbox.store import Company
from app.store.models import EntityLink, WebhookEvent
from app.store.queue import QueueRepository
from app.store.sync_config import load_rules, replace_rules
from app.store.sync_state import CompanyTakenError, relink_customer
from app.sync.core.events import parse_event
from app.sync.core.jobs import EntityType, JobDirection, OutcomeStatus
from app.sync.core.rules import Authority, Direction
from app.sync.intake.routing import accept_delivery
from app.warp.schema import customers_table
from tests.conftest import Database
from tests.syncenv import SyncEnv, job, rows, sync_env, synced


@pytest.fixture
async def env(db: Database) -> AsyncIterator[SyncEnv]:
    async with sync_env(db) as environment:
        yield environment


async def deliver(env: SyncEnv, *events: dict[str, Any]) -> None:
    """Route webhook events as the webhook route would, on one transaction."""
    incoming = [parse_event(n, event) for n, event in enumerate(events)]
    async with env.db.engine.begin() as connection:
        await accept_delivery(
            connection, incoming, queue=QueueRepository(env.db.engine), app_id=None
        )


async def merged_by_a_person(env: SyncEnv, company_a: str, company_b: str) -> Company:
    """A person merges B's company into A's in HubSpot, and the merge webhook is routed."""
    merged = env.sandbox.companies.merge(company_a, company_b, env.sandbox.user_source(7))
    await deliver(
        env,
        {
            "subscriptionType": "company.merge",
            "objectId": int(merged.id),
            "occurredAt": int(time.time() * 1000),
            "primaryObjectId": int(company_a),
            "mergedObjectIds": [int(company_b)],
            "newObjectId": int(merged.id),
        },
    )
    return merged


async def link_of(env: SyncEnv, customer_id: str) -> Any:
    [link] = await rows(env.db, EntityLink, EntityLink.warp_customer_id == customer_id)
    return link


# -- case 1: a merge of two linked companies ---------------------------------------------------


async def test_a_merge_of_two_linked_companies_keeps_the_survivors_customer(env: SyncEnv) -> None:
    a, company_a = await synced(env, ban="ZT-100000901", status="ACTIVE")
    b, company_b = await synced(env, ban="ZT-100000902", status="ACTIVE")
    merged = await merged_by_a_person(env, company_a, company_b)
    await env.warp.write_fields(b, {"status": "SUSPENDED"})
    await env.warp.write_fields(a, {"company_name": "A After The Merge"})

    [held] = await env.sync(b)
    [kept] = await env.sync(a)

    assert held.status is OutcomeStatus.DONE, held.error
    assert held.result is not None
    assert held.result["outcome"] == "merged"
    assert "relink" in held.result["reason"]
    assert kept.status is OutcomeStatus.DONE, kept.error
    assert kept.result is not None
    assert kept.result["hubspot_company_id"] == merged.id
    properties = env.company(merged.id)
    assert properties["warp_ban"] == "ZT-100000901", "B's values never reach A's company"
    assert properties["warp_status"] == "ACTIVE"
    assert properties["name"] == "A After The Merge"
    assert env.companies_with_ban("ZT-100000901") == [merged.id], "no second company for A"
    assert (await link_of(env, a)).hubspot_company_id == merged.id
    link_b = await link_of(env, b)
    assert (link_b.state, link_b.hubspot_company_id) == ("merged", company_b)


async def test_a_held_customer_stays_held_on_every_later_job(env: SyncEnv) -> None:
    _a, company_a = await synced(env, ban="ZT-100000911")
    b, company_b = await synced(env, ban="ZT-100000912")
    merged = await merged_by_a_person(env, company_a, company_b)
    for _ in range(2):
        [outcome] = await env.sync(b, direction=JobDirection.BOTH)
        assert outcome.result is not None
        assert outcome.result["outcome"] == "merged"
    assert (await link_of(env, b)).state == "merged"
    assert env.hubspot.updates == [] or all(
        item.id != merged.id for batch in env.hubspot.updates for item in batch
    )


# -- case 2: a HubSpot value hubsync cannot read -------------------------------------------------


async def test_an_unreadable_warp_owned_value_is_overwritten_and_the_batch_proceeds(
    env: SyncEnv,
) -> None:
    first, company_first = await synced(env, contact={"email": "billing@first.example"})
    second, company_second = await synced(env)
    env.sandbox.edit_as_user(company_first, {"domain": "see our website, https://first.example"})
    env.sandbox.edit_as_user(company_second, {"warp_credit_limit": "7000"})

    outcomes = await env.sync(first, second, direction=JobDirection.BOTH)

    assert [o.status for o in outcomes] == [OutcomeStatus.DONE, OutcomeStatus.DONE], [
        o.error for o in outcomes
    ]
    assert env.company(company_first)["domain"] == "first.example"
    assert (await env.customer(second))["credit_limit"] == 7000


async def test_an_unreadable_value_hubspot_may_win_fails_that_job_alone(env: SyncEnv) -> None:
    async with env.db.engine.begin() as connection:
        rules = await load_rules(connection)
        two_way = [
            change(r, direction=Direction.BIDIRECTIONAL, authority=Authority.HUBSPOT)
            if r.warp_field == "customer_type"
            else r
            for r in rules
        ]
        await replace_rules(connection, two_way, "test")
    bad, company_bad = await synced(env)
    good, company_good = await synced(env)
    options = [
        {"label": v, "value": v, "displayOrder": n, "hidden": False}
        for n, v in enumerate(["PREPAID", "POSTPAID", "RESELLER", "PARTNER"])
    ]
    await env.client.update_property("warp_customer_type", {"options": options})
    env.sandbox.edit_as_user(company_bad, {"warp_customer_type": "PARTNER"})
    env.sandbox.edit_as_user(company_good, {"warp_credit_limit": "4000"})

    failed, done = await env.sync(bad, good, direction=JobDirection.BOTH)

    assert failed.status is OutcomeStatus.FAILED
    assert "PARTNER" in (failed.error or ""), failed.error
    assert "warp_customer_type" in (failed.error or "")
    assert failed.error_kind == "validation"
    assert done.status is OutcomeStatus.DONE, done.error
    assert (await env.customer(good))["credit_limit"] == 4000
    assert (await env.customer(bad))["customer_type"] == "POSTPAID"


# -- case 3: two jobs for one pair in one batch -------------------------------------------------


async def test_a_customer_job_and_a_company_job_for_one_pair_end_with_one_outcome(
    env: SyncEnv,
) -> None:
    customer_id = await env.add_customer(ban="ZT-100000931", company_name="Made In WARP")
    typed = env.sandbox.companies.create(
        {"warp_ban": "ZT-100000931", "name": "Typed By Sales", "warp_credit_limit": "3000"},
        env.sandbox.user_source(5),
    )
    jobs = [
        job(customer_id, EntityType.CUSTOMER, JobDirection.TO_HUBSPOT),
        job(typed.id, EntityType.COMPANY, JobDirection.TO_WARP),
    ]

    outcomes = await env.engine(jobs)

    assert [o.status for o in outcomes] == [OutcomeStatus.DONE] * 2, [o.error for o in outcomes]
    assert outcomes[0].result == outcomes[1].result
    assert [o.job_id for o in outcomes] == [j.id for j in jobs]
    assert env.companies_with_ban("ZT-100000931") == [typed.id]
    assert (await link_of(env, customer_id)).hubspot_company_id == typed.id
    customer = await env.customer(customer_id)
    assert customer["external_ids"] == {"hubspot_company_id": typed.id}


async def test_two_company_jobs_resolving_to_one_customer_end_with_one_outcome(
    env: SyncEnv,
) -> None:
    customer_id, company_id = await synced(env)
    env.sandbox.edit_as_user(company_id, {"warp_credit_limit": "2500"})
    jobs = [
        job(company_id, EntityType.COMPANY, JobDirection.TO_WARP),
        job(customer_id, EntityType.CUSTOMER, JobDirection.BOTH),
    ]

    outcomes = await env.engine(jobs)

    assert [o.status for o in outcomes] == [OutcomeStatus.DONE] * 2, [o.error for o in outcomes]
    assert outcomes[0].result == outcomes[1].result
    assert (await env.customer(customer_id))["credit_limit"] == 2500


# -- case 10: free-mail customers ------------------------------------------------------------


async def test_a_free_mail_customer_never_clears_the_domain_a_person_entered(
    env: SyncEnv,
) -> None:
    customer_id, company_id = await synced(env, contact={"email": "owner@gmail.com"})
    assert "domain" not in [
        p for batch in env.hubspot.upserts for item in batch for p in item.properties
    ], "no value to send: the property is not written at all"
    env.sandbox.edit_as_user(company_id, {"domain": "acme-by-hand.com"})
    env.hubspot.forget()

    [outcome] = await env.sync(customer_id, direction=JobDirection.BOTH)
    await env.warp.write_fields(customer_id, {"status": "SUSPENDED"})
    [again] = await env.sync(customer_id)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert outcome.result is not None
    assert outcome.result["outcome"] == "unchanged"
    assert again.status is OutcomeStatus.DONE, again.error
    assert env.company(company_id)["domain"] == "acme-by-hand.com"
    assert all("domain" not in item.properties for batch in env.hubspot.updates for item in batch)


# -- case 12: a customer deleted in WARP ---------------------------------------------------------


async def delete_in_warp(env: SyncEnv, customer_id: str) -> None:
    table = customers_table(env.db.customers_table)
    async with env.db.engine.begin() as connection:
        await connection.execute(table.delete().where(table.c.id == customer_id))


async def test_a_customer_deleted_in_warp_gets_a_visible_state_not_a_stream_of_failures(
    env: SyncEnv,
) -> None:
    customer_id, company_id = await synced(env)
    await delete_in_warp(env, customer_id)

    [outcome] = await env.sync(customer_id, direction=JobDirection.BOTH)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert outcome.result is not None
    assert outcome.result["outcome"] == "warp_deleted"
    assert (await link_of(env, customer_id)).state == "warp_deleted"
    # Later CRM edits: stored and visibly ignored, no job queued for them.
    for n in range(3):
        await deliver(
            env,
            {
                "subscriptionType": "company.propertyChange",
                "objectId": int(company_id),
                "occurredAt": int(time.time() * 1000) + n,
                "propertyName": "name",
                "propertyValue": f"Edit {n}",
                "changeSource": "CRM_UI",
                "sourceId": "userId:1",
            },
        )
    events = await rows(env.db, WebhookEvent)
    assert [e.status for e in events] == ["ignored"] * 3
    assert all("deleted in WARP" in (e.status_reason or "") for e in events)
    assert (await QueueRepository(env.db.engine).counts())["pending"] == 0


async def test_a_company_job_for_a_customer_deleted_in_warp_is_not_a_failure(
    env: SyncEnv,
) -> None:
    customer_id, company_id = await synced(env)
    await delete_in_warp(env, customer_id)

    [outcome] = await env.sync(
        company_id, entity_type=EntityType.COMPANY, direction=JobDirection.TO_WARP
    )

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert outcome.result is not None
    assert outcome.result["outcome"] == "warp_deleted"
    link = await link_of(env, customer_id)
    assert (link.state, link.hubspot_company_id) == ("warp_deleted", company_id)


async def test_a_customer_back_in_warp_syncs_again(env: SyncEnv) -> None:
    customer_id, company_id = await synced(env, ban="ZT-100000951")
    [row] = await rows(env.db, customers_table(env.db.customers_table))
    await delete_in_warp(env, customer_id)
    await env.sync(customer_id)
    async with env.db.engine.begin() as connection:
        table = customers_table(env.db.customers_table)
        await connection.execute(table.insert().values(**row._mapping))
    await env.warp.write_fields(customer_id, {"status": "SUSPENDED"})

    [outcome] = await env.sync(customer_id)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert (await link_of(env, customer_id)).state == "active"
    assert env.company(company_id)["warp_status"] == "SUSPENDED"


async def test_a_merge_seen_before_its_webhook_never_steals_the_other_customers_link(
    env: SyncEnv,
) -> None:
    a, company_a = await synced(env, ban="ZT-100000921")
    b, company_b = await synced(env, ban="ZT-100000922")
    merged = env.sandbox.companies.merge(company_a, company_b, env.sandbox.user_source(7))
    await env.warp.write_fields(b, {"company_name": "B Renamed"})  # a read is needed

    [outcome] = await env.sync(b)

    assert outcome.result is not None
    assert outcome.result["outcome"] == "merged", outcome.result
    assert env.company(merged.id)["name"] != "B Renamed"
    assert (await link_of(env, a)).hubspot_company_id == company_a, "A's link is untouched"
    assert (await link_of(env, b)).state == "merged"


async def held_after_merge(env: SyncEnv) -> tuple[str, str, str]:
    """A and B linked, their companies merged (A's survived): (a, b, survivor id)."""
    a, company_a = await synced(env)
    b, company_b = await synced(env)
    merged = await merged_by_a_person(env, company_a, company_b)
    return a, b, merged.id


async def test_a_split_gives_the_held_customer_a_company_of_its_own(env: SyncEnv) -> None:
    a, b, survivor = await held_after_merge(env)
    ban_b = (await env.customer(b))["ban"]
    async with env.db.engine.begin() as connection:
        await relink_customer(connection, b, None, ban_b)

    [outcome] = await env.sync(b)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert outcome.result is not None
    assert outcome.result["outcome"] == "created"
    own = outcome.result["hubspot_company_id"]
    assert own != survivor
    assert env.companies_with_ban(ban_b) == [own]
    assert (await link_of(env, b)).state == "active"
    assert (await link_of(env, a)).hubspot_company_id == survivor
    assert (await env.customer(b))["external_ids"] == {"hubspot_company_id": own}


async def test_a_relink_points_the_held_customer_at_the_chosen_company(env: SyncEnv) -> None:
    _a, b, _survivor = await held_after_merge(env)
    spare = env.sandbox.companies.create({"name": "Spare Co"}, env.sandbox.user_source(5))
    ban_b = (await env.customer(b))["ban"]
    async with env.db.engine.begin() as connection:
        await relink_customer(connection, b, spare.id, ban_b)

    [outcome] = await env.sync(b, direction=JobDirection.BOTH)

    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert env.company(spare.id)["warp_ban"] == ban_b
    link = await link_of(env, b)
    assert (link.state, link.hubspot_company_id) == ("active", spare.id)


async def test_a_relink_to_another_customers_company_is_refused(env: SyncEnv) -> None:
    a, b, survivor = await held_after_merge(env)
    async with env.db.engine.begin() as connection:
        with pytest.raises(CompanyTakenError, match=a):
            await relink_customer(connection, b, survivor, "ZT-0")
    assert (await link_of(env, b)).state == "merged"
