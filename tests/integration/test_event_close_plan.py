"""Closing a batch's webhook events costs about the batch, however many events wait and however
long the batch's customers' history is.

Every batch closes the events of its jobs, and those of the earlier jobs of the same entity the
queue folded into them (`finish_events_for_jobs`). Written as "the jobs' events OR those of a
folded job", PostgreSQL could use no index for the OR: it read every queued event of the
deployment, and every earlier job of each entity, every batch. A backlog of webhooks (a pause,
a 429, an outage) made each batch slower while the backlog was what needed draining: 100,000
queued events cost ~35 ms of the database's time a batch (bench/README.md, "Eleventh pass").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.db import create_engine
from app.store.webhook_events import _PROCESSED_POSTGRES, finish_events_for_jobs
from app.sync.core.jobs import JobOutcome, OutcomeStatus
from tests.integration.plans import explained, rows_touched
from tests.webhook_support import change

BATCH = 100
HISTORY = 30  # earlier done jobs of each of the batch's entities
FOLDED = 10  # of the batch's entities, this many have an earlier job folded into this one
WAITING = 20_000  # queued events of other jobs
# What HubSpot sends for one property change: the rows are as wide as a deployment's.
RAW_EVENT = change(9876543210, "1250000.50", propertyName="annualrevenue")


async def _backlog(engine: AsyncEngine) -> list[int]:
    """The batch's running jobs (their ids), each entity with its history; queued events for
    the batch's jobs, for the folded ones, and many for other jobs."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO hubspot_sync_queue (entity_type, entity_key, state, finished_at,"
                " last_error_kind) SELECT 'company', 'e' || (g % :batch), 'done',"
                " CURRENT_TIMESTAMP, NULL FROM generate_series(1, :n) g"
            ),
            {"batch": BATCH, "n": BATCH * HISTORY},
        )
        await conn.execute(
            text(
                "INSERT INTO hubspot_sync_queue (entity_type, entity_key, state, finished_at,"
                " last_error_kind) SELECT 'company', 'e' || g, 'done', CURRENT_TIMESTAMP,"
                " 'superseded' FROM generate_series(0, :n - 1) g"
            ),
            {"n": FOLDED},
        )
        running = await conn.execute(
            text(
                "INSERT INTO hubspot_sync_queue (entity_type, entity_key, state, locked_by, claim)"
                " SELECT 'company', 'e' || g, 'running', 'w/0', 1"
                " FROM generate_series(0, :n - 1) g RETURNING id"
            ),
            {"n": BATCH},
        )
        batch = sorted(row[0] for row in running)
        await conn.execute(
            text(
                "INSERT INTO hubspot_webhook_events (dedup_key, subscription_type, raw, status,"
                " job_id) SELECT 'mine-' || q.id, 'company.propertyChange', '{}', 'queued', q.id"
                " FROM hubspot_sync_queue q WHERE q.state = 'running'"
                " OR q.last_error_kind = 'superseded'"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO hubspot_webhook_events (dedup_key, subscription_type, raw, status,"
                " job_id) SELECT 'other-' || g, 'company.propertyChange', CAST(:raw AS jsonb),"
                " 'processed', 100000000 + g FROM generate_series(1, :n) g"
            ),
            {"n": WAITING, "raw": json.dumps(RAW_EVENT)},
        )
    await _analyze(engine)
    # Then the backlog: statistics that say few events are queued, as after a burst of
    # webhooks that autovacuum has not caught up with.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE hubspot_webhook_events SET status = 'queued' WHERE dedup_key LIKE 'other-%'"
            )
        )
    return batch


async def _analyze(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE hubspot_sync_queue"))
        await conn.execute(text("ANALYZE hubspot_webhook_events"))


async def _queued(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT split_part(dedup_key, '-', 1), count(*) FROM hubspot_webhook_events"
                " WHERE status = 'queued' GROUP BY 1"
            )
        )
        return {str(kind): int(count) for kind, count in rows.all()}


@pytest.mark.postgres
async def test_closing_a_batchs_events_reads_about_the_batch(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        batch = await _backlog(engine)

        # Cheap: the statement every batch runs, explained, touches rows in proportion to the
        # batch, not to the queued events nor to the entities' history.
        # On stale statistics and fresh ones; in the plan made for the call's values, and in
        # the generic one a hot prepared statement keeps.
        args = _PROCESSED_POSTGRES.args(ids=batch, at=datetime.now(UTC))
        for statistics in ("stale", "fresh"):
            if statistics == "fresh":
                await _analyze(engine)
            for generic in (False, True):
                plan = await explained(engine, _PROCESSED_POSTGRES.sql, args, generic=generic)
                shown = json.dumps(plan, indent=1)
                assert rows_touched(plan) < 10 * BATCH, (statistics, generic, shown)
                # The folded jobs found among the superseded ones only (migration 0024).
                assert "ix_hubspot_sync_queue_superseded" in shown, (statistics, generic, shown)

        # Right: the batch's events and the folded jobs' close; the others wait.
        assert await _queued(engine) == {"mine": BATCH + FOLDED, "other": WAITING}
        async with engine.begin() as conn:
            done = [JobOutcome(job_id, OutcomeStatus.DONE) for job_id in batch]
            await finish_events_for_jobs(conn, done)
        assert await _queued(engine) == {"other": WAITING}
    finally:
        await engine.dispose()
