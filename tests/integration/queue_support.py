"""Helpers for the queue tests: read rows and move a job's clock without waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.queue import QUEUE, JobRecord, QueueRepository
from app.sync.core.backoff import RetryPolicy
from app.sync.core.jobs import EntityType, JobDirection, JobSource

CUSTOMER = EntityType.CUSTOMER


def make_queue(engine: AsyncEngine, **policy: Any) -> QueueRepository:
    return QueueRepository(engine, policy=RetryPolicy(**policy))


async def enqueue(queue: QueueRepository, key: str, priority: int = 5) -> tuple[int, bool]:
    async with queue.engine.begin() as connection:
        job_id, created = await queue.enqueue(
            connection,
            CUSTOMER,
            key,
            priority=priority,
            source=JobSource.API,
            direction=JobDirection.TO_HUBSPOT,
        )
    return job_id, created


async def enqueue_keys(queue: QueueRepository, keys: list[str]) -> None:
    """Customer jobs for `keys`, as the bulk API queues them (one transaction)."""
    async with queue.engine.begin() as connection:
        await queue.enqueue_many(
            connection,
            EntityType.CUSTOMER,
            keys,
            source=JobSource.API,
            direction=JobDirection.TO_HUBSPOT,
        )


async def job(queue: QueueRepository, job_id: int) -> JobRecord:
    record = await queue.get(job_id)
    assert record is not None
    return record


async def rows_of(engine: AsyncEngine, key: str) -> list[JobRecord]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(QUEUE).where(QUEUE.c.entity_key == key).order_by(QUEUE.c.id)
        )
        return [JobRecord.from_row(row) for row in rows.mappings()]


async def set_times(engine: AsyncEngine, job_id: int, **ago_seconds: float) -> None:
    """Move a job's timestamps (run_at, created_at, lease_until, finished_at) to `ago` seconds
    before now — the test's way of letting time pass."""
    now = datetime.now(UTC)
    values = {name: now - timedelta(seconds=ago) for name, ago in ago_seconds.items()}
    async with engine.begin() as connection:
        await connection.execute(update(QUEUE).where(QUEUE.c.id == job_id).values(**values))


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float, step: float = 0.02
) -> None:
    """Poll `check` (a database, another process) until it holds; fail after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if await check():
            return
        if loop.time() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(step)


async def wait_for_state(queue: QueueRepository, job_id: int, state: str, within: float) -> None:
    async def reached() -> bool:
        return (await job(queue, job_id)).state == state

    await eventually(reached, within)
