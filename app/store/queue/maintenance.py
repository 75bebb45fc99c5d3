"""Keeping the sync queue healthy: rescue expired leases, requeue failures, prune the done.

Each function is one bounded, idempotent transaction (or a few), safe to run from every
replica at once: PostgreSQL row locks with SKIP LOCKED keep two rescuers off the same rows,
and every write re-checks the state it expects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.metrics.instruments import FinishedJob, observe_finished
from app.store.queue.pending import PendingReturn, return_to_pending
from app.store.queue.records import (
    DONE,
    FAILED,
    PENDING,
    QUEUE,
    RUNNING,
    SQL_STATE,
    as_utc,
    sql_now,
    utc_now,
)
from app.sync.core.backoff import RetryPolicy
from app.sync.core.jobs import OutcomeStatus

log = logging.getLogger("hubsync.queue")

REQUEUE_CHUNK = 500


async def database_now(connection: AsyncConnection) -> datetime:
    if connection.dialect.name == "postgresql":
        now = (await connection.execute(select(func.now()))).scalar_one()
        return as_utc(now)
    return utc_now()


async def rescue_expired(engine: AsyncEngine, policy: RetryPolicy, limit: int) -> int:
    """Jobs whose lease ran out (their worker died or hung) go back to pending after a backoff
    (so a job that kills its worker cannot crash-loop the fleet), or fail past the maximum
    age. A job whose worker still heartbeats has a lease in the future and is never touched."""
    async with engine.begin() as connection:
        now_sql = sql_now(connection.dialect)
        query = (
            select(*QUEUE.c, now_sql.label("db_now"))
            .where(QUEUE.c.state == SQL_STATE[RUNNING], QUEUE.c.lease_until < now_sql)
            .order_by(QUEUE.c.id)
            .limit(limit)
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=QUEUE)
        rows = (await connection.execute(query)).mappings().all()
        if not rows:
            return 0
        now = as_utc(rows[0]["db_now"])
        items: list[PendingReturn] = []
        expired: list[int] = []
        for row in rows:
            retry_at = now + timedelta(seconds=policy.delay(row["attempts"]))
            note = f"lease expired: worker {row['locked_by']} stopped heartbeating"
            if policy.exhausted(as_utc(row["created_at"]), retry_at):
                expired.append(row["id"])
            else:
                items.append(PendingReturn.of(row, retry_at, note, "lease_expired"))
        # Re-checked on write: on SQLite a heartbeat may have landed since the read.
        guard = (QUEUE.c.state == SQL_STATE[RUNNING], QUEUE.c.lease_until < now)
        if expired:
            await connection.execute(
                update(QUEUE)
                .where(QUEUE.c.id.in_(expired), *guard)
                .values(
                    state=SQL_STATE[FAILED],
                    last_error="gave up: its worker stopped heartbeating past the maximum age",
                    last_error_kind="lease_expired",
                    locked_by=None,
                    lease_until=None,
                    finished_at=now,
                    updated_at=now,
                )
            )
        await return_to_pending(connection, now, items, guard)
    # An attempt whose worker died ended too: back to the queue, or failed for good.
    gave_up = set(expired)
    observe_finished(
        [
            FinishedJob(
                row["direction"],
                row["source"],
                as_utc(row["created_at"]),
                FAILED if row["id"] in gave_up else OutcomeStatus.RETRY.value,
            )
            for row in rows
        ],
        now,
    )
    log.warning("rescued %d job(s) whose lease expired", len(rows))
    return len(rows)


LOWEST_PRIORITY = 10
AGEING_CHUNK = 5000


async def age_pending(engine: AsyncEngine, step_seconds: float) -> int:
    """Ageing: a pending job due for k steps is at least as urgent as priority 10 - k (never
    above 1, never lowered), so strict priority cannot starve a backfill. The level follows
    from how long the job has been due (`run_at`), not from how often this ran, so running it
    from every replica at any rate gives the same answer. Returns the jobs lifted."""
    async with engine.begin() as connection:
        now = await database_now(connection)
        thresholds = [
            (now - timedelta(seconds=step_seconds * steps), LOWEST_PRIORITY - steps)
            for steps in range(LOWEST_PRIORITY - 1, 0, -1)  # the longest wait first
        ]
        aged = case(*((QUEUE.c.run_at <= moment, level) for moment, level in thresholds))
        candidates = (
            select(QUEUE.c.id)
            .where(
                QUEUE.c.state == SQL_STATE[PENDING],
                QUEUE.c.run_at <= thresholds[-1][0],
                QUEUE.c.priority > aged,
            )
            .limit(AGEING_CHUNK)
        )
        if connection.dialect.name == "postgresql":
            # Rows a claim holds right now are simply aged on the next tick.
            candidates = candidates.with_for_update(skip_locked=True, of=QUEUE)
        result = await connection.execute(
            update(QUEUE)
            .where(QUEUE.c.id.in_(candidates.scalar_subquery()), QUEUE.c.priority > aged)
            .values(priority=aged)
        )
        return result.rowcount or 0


async def requeue_failed(engine: AsyncEngine, job_ids: Sequence[int] | None) -> int:
    """One chunk of failed jobs back to pending with attempts reset; returns the chunk size."""
    async with engine.begin() as connection:
        query = select(*QUEUE.c).where(QUEUE.c.state == SQL_STATE[FAILED])
        if job_ids is not None:
            query = query.where(QUEUE.c.id.in_(list(job_ids)))
        # Newest first: when one entity failed several times, its newest job survives.
        query = query.order_by(QUEUE.c.id.desc()).limit(REQUEUE_CHUNK)
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(of=QUEUE)
        rows = (await connection.execute(query)).mappings().all()
        now = await database_now(connection)
        items = [
            PendingReturn.of(row, now, row["last_error"], row["last_error_kind"], attempts=0)
            for row in rows
        ]
        await return_to_pending(connection, now, items, (QUEUE.c.state == SQL_STATE[FAILED],))
    return len(rows)


async def delete_in_batches(
    engine: AsyncEngine,
    table: Table,
    condition: Callable[[Any], ColumnElement[bool]],
    older_than: timedelta,
    *,
    batch_size: int,
    max_batches: int,
) -> int:
    """Delete the rows `condition(cutoff)` selects (cutoff = the database's now minus `older_than`),
    oldest id first, one short transaction per batch, at most `max_batches` batches."""
    total = 0
    for _ in range(max_batches):
        async with engine.begin() as connection:
            cutoff = await database_now(connection) - older_than
            oldest = (
                select(table.c.id).where(condition(cutoff)).order_by(table.c.id).limit(batch_size)
            )
            result = await connection.execute(
                delete(table).where(table.c.id.in_(oldest.scalar_subquery()))
            )
            deleted = result.rowcount or 0
        total += deleted
        if deleted < batch_size:
            break
    return total


async def prune_done(
    engine: AsyncEngine, older_than: timedelta, batch_size: int, max_batches: int
) -> int:
    """Delete done jobs finished more than `older_than` ago, one short transaction per batch."""

    def finished_before(cutoff: Any) -> ColumnElement[bool]:
        return and_(QUEUE.c.state == SQL_STATE[DONE], QUEUE.c.finished_at < cutoff)

    return await delete_in_batches(
        engine,
        QUEUE,
        finished_before,
        older_than,
        batch_size=batch_size,
        max_batches=max_batches,
    )
