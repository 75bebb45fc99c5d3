"""PostgreSQL LISTEN/NOTIFY: a committed enqueue wakes every listening worker in milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.db import create_engine
from app.sync.core.jobs import ClaimedJob, JobOutcome, OutcomeStatus
from app.sync.worker.notify import QueueListener
from app.sync.worker.worker import Worker
from tests.integration.queue_support import (
    CUSTOMER,
    enqueue,
    eventually,
    make_queue,
    wait_for_state,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url, pool_size=3)
    yield engine
    await engine.dispose()


async def started(listener: QueueListener) -> QueueListener:
    await listener.start()
    async with asyncio.timeout(5):
        await listener.wait_listening()
    return listener


async def test_listeners_hear_an_enqueue_when_it_commits_not_before(
    engine: AsyncEngine, postgres_url: str
) -> None:
    queue = make_queue(engine)
    woken = asyncio.Event()
    listener = await started(QueueListener(postgres_url, woken.set))
    woken.clear()  # the catch-up wake on connect
    try:
        async with engine.begin() as connection:
            await queue.enqueue(connection, CUSTOMER, "c1", source="api", direction="to_hubspot")
            await asyncio.sleep(0.3)
            assert not woken.is_set()  # not visible yet, so not announced yet
        async with asyncio.timeout(1):
            await woken.wait()
    finally:
        await listener.stop()
    assert listener.notifications == 1


async def test_a_notified_worker_runs_the_job_without_waiting_for_its_poll(
    engine: AsyncEngine, postgres_url: str
) -> None:
    queue = make_queue(engine)
    seen: list[int] = []

    async def handler(jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        seen.extend(j.id for j in jobs)
        return [JobOutcome(j.id, OutcomeStatus.DONE) for j in jobs]

    worker = Worker(queue, handler, worker_id="w", poll_interval=60)
    await worker.start()
    listener = await started(QueueListener(postgres_url, worker.wake))
    try:
        await asyncio.sleep(0.2)
        job_id, _ = await enqueue(queue, "fast")
        loop = asyncio.get_running_loop()
        began = loop.time()
        await wait_for_state(queue, job_id, "done", within=2)
        assert loop.time() - began < 1.0
    finally:
        await listener.stop()
        await worker.stop()
    assert seen == [job_id]


async def test_the_listener_reconnects_after_losing_its_connection(
    engine: AsyncEngine, postgres_url: str
) -> None:
    queue = make_queue(engine)
    woken = asyncio.Event()
    listener = await started(QueueListener(postgres_url, woken.set))
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%' "
                    "AND pid <> pg_backend_pid()"
                )
            )

        async def relistening() -> bool:
            return listener.connects >= 2 and listener.listening

        await eventually(relistening, within=10)
        woken.clear()
        await enqueue(queue, "after-reconnect")
        async with asyncio.timeout(2):
            await woken.wait()
    finally:
        await listener.stop()
