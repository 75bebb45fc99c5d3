"""Billing account numbers as people really type them, through the reconciliation and the
engine against the sandbox, on SQLite and PostgreSQL:

- a long ban (WARP's column is text; a CRM user types anything) is reported and synced like
  any other; a ban hubsync cannot use (a NUL, absurdly long) is an `error` item and the run
  finishes — it never stops every later run;
- a company whose `warp_ban` has surrounding whitespace is adopted, not duplicated, whichever
  way it is reached (reconciliation fix, a company job from a webhook or the catch-up, a
  customer job), and its `warp_ban` is corrected to WARP's value.
"""

from __future__ import annotations

import time

from app.sandbox.sandbox import Sandbox
from app.store import sync_state
from app.sync.core.identity import MAX_BAN_LENGTH
from app.sync.core.jobs import EntityType, JobDirection, OutcomeStatus
from tests.conftest import Database
from tests.reconcile_support import items, reconcile, work_queue
from tests.syncenv import SyncEnv, sync_env
from tests.webhook_support import deliver, jobs, lifecycle, service

CRM_USER = Sandbox.user_source(7)


async def link_of(env: SyncEnv, customer_id: str) -> tuple[str | None, str | None, str]:
    async with env.db.engine.connect() as connection:
        link = (await sync_state.links_by_customer(connection, [customer_id]))[customer_id]
    return link.hubspot_company_id, link.warp_ban, link.state


def live_companies(env: SyncEnv) -> list[str]:
    return [c.id for c in env.sandbox.companies.active()]


# -- item 1: long and unusable bans ----------------------------------------------------------


async def test_long_bans_are_reported_and_synced(db: Database) -> None:
    async with sync_env(db) as env:
        long_ban = "ZT-" + "7" * 97  # 100 characters, held in WARP
        customer = await env.add_customer(ban=long_ban)
        typed = "ACME-" + "x" * 75  # 80 characters, typed into a company by a CRM user
        orphan = env.sandbox.companies.create({"name": "Typed", "warp_ban": typed}, CRM_USER)

        fixed = await reconcile(env, mode="fix")
        assert fixed.counts == {"missing_in_hubspot": 1, "orphan": 1}
        [missing] = await items(env, fixed, "missing_in_hubspot")
        assert (missing["warp_customer_id"], missing["warp_ban"]) == (customer, long_ban)
        assert missing["job_id"] is not None
        [lone] = await items(env, fixed, "orphan")
        assert (lone["hubspot_company_id"], lone["warp_ban"]) == (orphan.id, typed)

        # The fix's job creates the long-ban customer's company and links it.
        await work_queue(env)
        company_id, ban, state = await link_of(env, customer)
        assert (ban, state) == (long_ban, "active")
        assert company_id is not None
        assert env.company(company_id)["warp_ban"] == long_ban
        again = await reconcile(env)
        assert again.counts == {"in_sync": 1, "orphan": 1}


async def test_unusable_bans_are_error_items_and_every_run_finishes(db: Database) -> None:
    async with sync_env(db) as env:
        fine = await env.add_customer()
        nul = env.sandbox.companies.create({"name": "Nul", "warp_ban": "ZT-1\x002"}, CRM_USER)
        huge = env.sandbox.companies.create(
            {"name": "Huge", "warp_ban": "Z" * (MAX_BAN_LENGTH + 1)}, CRM_USER
        )
        absurd = await env.add_customer(ban="B" * (MAX_BAN_LENGTH + 1))  # WARP's text column

        for mode in ("dry_run", "fix", "dry_run"):  # every later run finishes too
            run = await reconcile(env, mode=mode)
            assert run.counts == {"missing_in_hubspot": 1, "error": 3}, mode
        errors = {
            i["hubspot_company_id"] or i["warp_customer_id"]: i
            for i in await items(env, run, "error")
        }
        assert set(errors) == {nul.id, huge.id, absurd}
        assert "NUL" in errors[nul.id]["detail"]
        assert f"longer than {MAX_BAN_LENGTH}" in errors[huge.id]["detail"]
        assert f"longer than {MAX_BAN_LENGTH}" in errors[absurd]["detail"]
        assert all(i["action"] == "review" and i["job_id"] is None for i in errors.values())

        # The engine refuses the absurd customer alone, with the reason.
        good, refused = await env.sync(fine, absurd)
        assert good.status is OutcomeStatus.DONE, good.error
        assert refused.status is OutcomeStatus.FAILED
        assert f"longer than {MAX_BAN_LENGTH}" in (refused.error or "")


async def test_a_company_job_with_an_unusable_ban_is_unmatched_not_a_failed_batch(
    db: Database,
) -> None:
    async with sync_env(db) as env:
        fine = await env.add_customer()
        ban = (await env.customer(fine))["ban"]
        good = env.sandbox.companies.create({"name": "Good", "warp_ban": ban}, CRM_USER)
        nul = env.sandbox.companies.create({"name": "Nul", "warp_ban": "ZT-1\x002"}, CRM_USER)
        paired, unusable = await env.sync(
            good.id, nul.id, entity_type=EntityType.COMPANY, direction=JobDirection.TO_WARP
        )
        assert paired.status is OutcomeStatus.DONE, paired.error
        assert unusable.status is OutcomeStatus.DONE, unusable.error
        assert unusable.result is not None
        assert unusable.result["outcome"] == "unmatched"
        assert "NUL" in unusable.result["reason"]
        assert (await link_of(env, fine))[0] == good.id


# -- item 2: whitespace around a ban -----------------------------------------------------------


async def test_adopt_and_fix_adopts_a_company_whose_ban_has_whitespace(db: Database) -> None:
    async with sync_env(db) as env:
        customer = await env.add_customer(company_name="Spaced Ltd")
        ban = (await env.customer(customer))["ban"]
        company = env.sandbox.companies.create(
            {"name": "Spaced Ltd", "warp_ban": ban + " "}, CRM_USER
        )

        run = await reconcile(env, mode="fix")
        assert run.counts == {"adopt": 1}
        [item] = await items(env, run, "adopt")
        assert (item["warp_customer_id"], item["hubspot_company_id"]) == (customer, company.id)
        assert item["warp_ban"] == ban
        assert item["job_id"] is not None
        await work_queue(env)

        assert live_companies(env) == [company.id], "no second company"
        assert await link_of(env, customer) == (company.id, ban, "active")
        assert env.company(company.id)["warp_ban"] == ban, "WARP owns the ban: corrected"
        again = await reconcile(env)
        assert again.counts == {"in_sync": 1}


async def test_a_company_job_pairs_by_the_normalised_ban(db: Database) -> None:
    """What a webhook or the catch-up queues for an unlinked company."""
    async with sync_env(db) as env:
        customer = await env.add_customer()
        ban = (await env.customer(customer))["ban"]
        company = env.sandbox.companies.create(
            {"name": "Tabbed", "warp_ban": f"\t{ban}\u00a0"}, CRM_USER
        )
        [outcome] = await env.sync(
            company.id, entity_type=EntityType.COMPANY, direction=JobDirection.TO_WARP
        )
        assert outcome.status is OutcomeStatus.DONE, outcome.error
        assert await link_of(env, customer) == (company.id, ban, "active")
        assert env.company(company.id)["warp_ban"] == ban
        assert live_companies(env) == [company.id]


async def test_a_customer_job_finds_a_known_company_whose_ban_has_whitespace(
    db: Database,
) -> None:
    """The company came first (its webhook left it unmatched), the customer later: the
    customer's own sync finds it instead of upserting a second company."""
    async with sync_env(db) as env:
        company = env.sandbox.companies.create(
            {"name": "Early", "warp_ban": " ZT-555000111 "}, CRM_USER
        )
        [early] = await env.sync(
            company.id, entity_type=EntityType.COMPANY, direction=JobDirection.TO_WARP
        )
        assert early.result is not None
        assert early.result["outcome"] == "unmatched"  # no customer yet
        customer = await env.add_customer(ban="ZT-555000111")
        [outcome] = await env.sync(customer, direction=JobDirection.BOTH)
        assert outcome.status is OutcomeStatus.DONE, outcome.error
        assert live_companies(env) == [company.id]
        assert await link_of(env, customer) == (company.id, "ZT-555000111", "active")
        assert env.company(company.id)["warp_ban"] == "ZT-555000111"


async def test_a_webhook_for_a_company_whose_ban_has_whitespace_adopts_it(db: Database) -> None:
    """Through the signed webhook route: the event is routed to a company job, which pairs
    the company with its customer by the normalised ban."""
    async with sync_env(db) as env:
        customer = await env.add_customer()
        ban = (await env.customer(customer))["ban"]
        company = env.sandbox.companies.create({"name": "Hooked", "warp_ban": f" {ban}"}, CRM_USER)
        async with service(env.db) as client:
            answer = await deliver(
                client,
                [lifecycle("creation", int(company.id), int(time.time() * 1000))],
            )
        assert answer.json()["queued"] == 1, answer.text
        [queued] = await jobs(env.db)
        assert (queued.entity_type, queued.entity_key) == ("company", company.id)
        [outcome] = await env.sync(
            company.id, entity_type=EntityType.COMPANY, direction=JobDirection(queued.direction)
        )
        assert outcome.status is OutcomeStatus.DONE, outcome.error
        assert await link_of(env, customer) == (company.id, ban, "active")
        assert env.company(company.id)["warp_ban"] == ban
        assert live_companies(env) == [company.id]
