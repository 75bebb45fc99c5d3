"""Reconciliation runs for tests: on the sync stack of `tests.syncenv`, run a whole full
reconciliation, read its items, and work the queue it filled through the real engine."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.store import reconciliation as runs
from app.store.queue import QueueRepository
from app.store.reconciliation import RunRecord
from app.store.sync_state import links
from app.sync.reconcile.full_run import FullRun
from app.warp.schema import customers_table
from tests.syncenv import SyncEnv

OWNER = "test-process"


async def reconcile(env: SyncEnv, mode: str = "dry_run", **options: Any) -> RunRecord:
    """One full run from start to end in this process."""
    record = await runs.start_run(
        env.db.engine, mode=mode, trigger="api", owner=OWNER, lease_seconds=60
    )
    assert record is not None, "a run is already running"
    finished = await full_run(env, **options).execute(record)
    assert finished is not None
    assert finished.status == "done", finished.error
    return finished


def full_run(env: SyncEnv, owner: str = OWNER, **options: Any) -> FullRun:
    return FullRun(
        engine=env.db.engine,
        warp=env.warp,
        hubspot=options.pop("hubspot", env.client),
        queue=QueueRepository(env.db.engine),
        owner=owner,
        lease_seconds=options.pop("lease_seconds", 60),
        **options,
    )


async def items(env: SyncEnv, run: RunRecord, category: str | None = None) -> list[dict[str, Any]]:
    async with env.db.engine.connect() as connection:
        return await runs.items_page(connection, run.id, category=category, limit=10_000)


async def work_queue(env: SyncEnv) -> int:
    """Claim and sync every due job with the engine until the queue is empty."""
    queue = QueueRepository(env.db.engine)
    done = 0
    while jobs := await queue.claim("test-worker", 100, 60):
        outcomes = await env.engine(jobs)
        await queue.complete("test-worker", outcomes)
        done += len(jobs)
    return done


async def snapshot(env: SyncEnv) -> tuple[list[Any], list[Any], dict[str, int]]:
    """WARP's customers, hubsync's links, the queue: what a dry run must leave alone."""
    table = customers_table(env.db.customers_table)
    async with env.db.engine.connect() as connection:
        customers = list(await connection.execute(select(table).order_by(table.c.id)))
        link_rows = list(await connection.execute(select(links).order_by(links.c.id)))
    return customers, link_rows, await QueueRepository(env.db.engine).counts()


async def sql_update_customer(env: SyncEnv, customer_id: str, **values: Any) -> None:
    """A change made straight in WARP's database, as another WARP program would."""
    table = customers_table(env.db.customers_table)
    async with env.db.engine.begin() as connection:
        await connection.execute(table.update().where(table.c.id == customer_id).values(**values))
