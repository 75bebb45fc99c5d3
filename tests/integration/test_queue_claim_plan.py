"""A claim costs about its batch, whatever the planner's statistics say.

The queue's statistics are stale by nature: a backlog of thousands of jobs appears between two
ANALYZE runs (and autovacuum may be off, as it is on the benchmark machine). With the
statistics of an empty queue, PostgreSQL planned the "entity not already running" check as a
nested loop that scanned every running job for every pending one: a claim of 100 took 1.4 s
under a backlog of 10,000 (`bench.outbound --customers 10000` ran at 160 companies/s).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from app.store.db import create_engine
from app.store.queue import QUEUE
from app.store.queue.repository import _claim_postgres
from tests.conftest import Database
from tests.integration.plans import explained, rows_touched
from tests.integration.queue_support import make_queue

PENDING_JOBS = 3000
RUNNING_JOBS = 300
LIMIT = 100


async def _stale_backlog(db: Database) -> None:
    """Done jobs analysed while nothing was pending; then a backlog, some of it running, and
    a pending follow-up for every running entity (the case the check exists for)."""
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO hubspot_sync_queue (entity_type, entity_key, state, priority,"
                " finished_at) SELECT 'customer', 'c' || g, 'done', 5, CURRENT_TIMESTAMP"
                " FROM generate_series(1, 6000) g"
            )
        )
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE hubspot_sync_queue"))
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO hubspot_sync_queue (entity_type, entity_key, state, priority, run_at)"
                " SELECT 'customer', 'c' || g, :state, 5, CURRENT_TIMESTAMP - interval '1 minute'"
                " FROM generate_series(1, :n) g"
            ),
            [{"state": "running", "n": RUNNING_JOBS}],
        )
        await conn.execute(
            text(
                "INSERT INTO hubspot_sync_queue (entity_type, entity_key, state, priority, run_at)"
                " SELECT 'customer', 'c' || g, 'pending', 5,"
                " CURRENT_TIMESTAMP - interval '1 minute' + g * interval '1 millisecond'"
                " FROM generate_series(1, :n) g"
            ),
            {"n": PENDING_JOBS},
        )


@pytest.mark.postgres
async def test_a_claim_reads_about_its_batch_under_stale_statistics(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url)
    try:
        db = Database("postgresql", postgres_url, engine, "accounts.customers")
        await _stale_backlog(db)
        claimed = await make_queue(engine).claim("w/0", LIMIT, 60)

        # Correct: the oldest due jobs whose entity is not running, none twice.
        keys = [job.entity_key for job in claimed]
        assert keys == [f"c{n}" for n in range(RUNNING_JOBS + 1, RUNNING_JOBS + 1 + LIMIT)]

        # Cheap: the same statement (the one the queue runs through asyncpg), explained,
        # touches rows in proportion to the batch and the running jobs, not to their product.
        claim = _claim_postgres()
        params = claim.args(worker_id="w/0", limit=LIMIT, lease=timedelta(seconds=60))
        for generic in (False, True):  # the plan for the call's values, and the kept one
            plan = await explained(engine, claim.sql, params, generic=generic)
            touched = rows_touched(plan)
            assert touched < 4 * (LIMIT + RUNNING_JOBS), json.dumps(plan, indent=1)
    finally:
        await engine.dispose()


async def test_a_claim_skips_running_entities_on_both_databases(db: Database) -> None:
    queue = make_queue(db.engine)
    async with db.engine.begin() as conn:
        await conn.execute(
            QUEUE.insert(),
            [
                {"entity_type": "customer", "entity_key": "a", "state": "running"},
                {"entity_type": "customer", "entity_key": "a", "state": "pending"},
                {"entity_type": "company", "entity_key": "a", "state": "pending"},
                {"entity_type": "customer", "entity_key": "b", "state": "pending"},
            ],
        )
    claimed = await queue.claim("w/0", 10, 60)
    assert sorted((job.entity_type, job.entity_key) for job in claimed) == [
        ("company", "a"),
        ("customer", "b"),
    ]
