"""The catch-up: a direct SQL update in WARP and a CRM edit whose webhook was dropped both
reach the other side within one pass; hubsync's own writes do not come back as work; a
window with more results than one search may return is split."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from app.sandbox.config import SandboxConfig
from app.settings import RateLimit
from app.store import catchup as marks
from app.store.queue import QueueRepository
from app.sync.reconcile.catchup import CatchUp
from tests.conftest import Database
from tests.integration.test_reconcile_categories import CRM_USER, link_of, synced
from tests.reconcile_support import sql_update_customer, work_queue
from tests.syncenv import SyncEnv, sync_env


def catchup(env: SyncEnv, owner: str = "test-replica", **options: object) -> CatchUp:
    return CatchUp(
        engine=env.db.engine,
        warp=env.warp,
        hubspot=env.client,
        queue=QueueRepository(env.db.engine),
        owner=owner,
        interval_seconds=60,
        overlap_seconds=2,
        **options,  # type: ignore[arg-type]
    )


async def test_lost_changes_on_both_sides_arrive_within_one_pass(db: Database) -> None:
    async with sync_env(db) as env:
        warp_edited, crm_edited, untouched = await synced(env, 3)
        passes = catchup(env)
        await passes()  # the first pass sets the watermarks
        await work_queue(env)
        await asyncio.sleep(0.01)
        await sql_update_customer(
            env, warp_edited, status="SUSPENDED", updated_at=datetime.now(UTC)
        )
        env.sandbox.set_faults(drop_webhooks=1.0)  # HubSpot gives up on the webhook
        env.sandbox.edit_as_user(await link_of(env, crm_edited), {"warp_credit_limit": "9000"})
        result = await passes()
        assert (result.hubspot, result.warp) == (1, 1)
        assert await work_queue(env) == 2
        assert env.company(await link_of(env, warp_edited))["warp_status"] == "SUSPENDED"
        assert (await env.customer(crm_edited))["credit_limit"] == Decimal("9000")
        assert (await env.customer(untouched))["status"] == "ACTIVE"
        quiet = await passes()  # the syncs' own writes are not news
        assert (quiet.hubspot, quiet.warp) == (0, 0)
        async with db.engine.connect() as connection:
            stored = {m.source: m for m in await marks.watermarks(connection)}
        assert set(stored) == {"hubspot", "warp"}
        assert all(m.watermark is not None for m in stored.values())


async def test_one_replica_per_pass(db: Database) -> None:
    async with sync_env(db) as env:
        first = await catchup(env)()
        second = await catchup(env, owner="another-replica")()
        assert (first.hubspot, first.warp) == (0, 0)
        assert (second.hubspot, second.warp) == (None, None)  # the lease is the first's


async def test_a_window_too_full_for_one_search_is_split(db: Database) -> None:
    config = SandboxConfig(rate_limit=RateLimit(1000, 1.0), search_result_cap=5,
                           search_rate_limit=RateLimit(1000, 1.0),
                           search_index_delay_seconds=0)  # fmt: skip
    async with sync_env(db, config) as env:
        passes = catchup(env, search_cap=5)
        await passes()
        created = []
        for n in range(12):
            created.append(env.sandbox.companies.create({"name": f"Co {n}"}, CRM_USER).id)
            await asyncio.sleep(0.004)
        result = await passes()
        assert result.hubspot == 12
        assert result.searches > 3  # split, not cut off at five
        jobs = await QueueRepository(db.engine).counts()
        assert jobs["pending"] == 12
