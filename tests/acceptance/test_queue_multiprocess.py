"""Several worker processes on one PostgreSQL queue: every job once, no entity twice at once,
and a worker killed with SIGKILL mid-batch loses nothing."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.db import create_engine
from app.store.queue import QUEUE, QueueRepository
from tests.acceptance.queue_worker import LEDGER
from tests.conftest import REPO_ROOT
from tests.integration.queue_support import CUSTOMER, eventually

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url, pool_size=5)
    async with engine.begin() as connection:
        await connection.run_sync(LEDGER.create)
    yield engine
    await engine.dispose()


@asynccontextmanager
async def worker_process(
    url: str, worker_id: str, *extra: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.acceptance.queue_worker", url, worker_id, *extra,
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def ledger(engine: AsyncEngine) -> list[tuple[int, str, str, float, float]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(LEDGER.c.job_id, LEDGER.c.entity_key, LEDGER.c.worker, LEDGER.c.started,
                   LEDGER.c.ended)
        )  # fmt: skip
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def queue_state(engine: AsyncEngine) -> dict[str, int]:
    return await QueueRepository(engine).counts()


async def test_three_workers_sync_every_job_once_and_no_entity_twice_at_once(
    engine: AsyncEngine, postgres_url: str
) -> None:
    queue = QueueRepository(engine)
    entities = [f"cust-{n:05d}" for n in range(4000)]
    async with engine.begin() as connection:
        await queue.enqueue_many(connection, CUSTOMER, entities, source="api", direction="both")
    hot = entities[:300]  # requested again and again while they are being synced
    rng = random.Random(5)
    async with (
        worker_process(postgres_url, "proc-a") as a,
        worker_process(postgres_url, "proc-b") as b,
        worker_process(postgres_url, "proc-c") as c,
    ):
        total = 4000
        while total < 5000:
            async with engine.begin() as connection:
                for key in rng.sample(hot, 20):
                    _, created = await queue.enqueue(
                        connection, CUSTOMER, key, source="webhook", direction="to_warp"
                    )
                    total += created
            await asyncio.sleep(0.005)

        async def drained() -> bool:
            counts = await queue_state(engine)
            return counts["pending"] == counts["running"] == 0

        await eventually(drained, within=45, step=0.2)
        for process in (a, b, c):
            assert process.returncode is None  # nobody crashed
    for process in (a, b, c):
        assert process.returncode == 0  # and each stopped gracefully on SIGTERM

    async with engine.connect() as connection:
        jobs = {row.id: row for row in await connection.execute(select(QUEUE))}
    entries = await ledger(engine)
    assert len(jobs) >= 5000
    assert all(job.state == "done" for job in jobs.values())
    done_by_ledger = [entry[0] for entry in entries]
    assert sorted(done_by_ledger) == sorted(jobs)  # every job exactly once: none lost, none twice
    assert {entry[1] for entry in entries} == set(entities)
    intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for _, entity, _, started, ended in entries:
        intervals[entity].append((started, ended))
    for entity, spans in intervals.items():
        spans.sort()
        for (_, previous_end), (next_start, _) in itertools.pairwise(spans):
            assert next_start >= previous_end, f"{entity} was synced twice at the same time"
    assert len({entry[2] for entry in entries}) == 3  # the work was shared


async def test_a_killed_worker_holding_a_batch_loses_nothing(
    engine: AsyncEngine, postgres_url: str
) -> None:
    queue = QueueRepository(engine)
    async with engine.begin() as connection:
        await queue.enqueue_many(
            connection, CUSTOMER, [f"k-{n}" for n in range(200)], source="api", direction="both"
        )

    async def running_by(worker: str) -> int:
        async with engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).where(
                    QUEUE.c.state == "running", QUEUE.c.locked_by.like(f"{worker}/%")
                )
            )
        return int(count or 0)

    async with worker_process(
        postgres_url, "doomed", "--stuck", "--lease", "2", "--batch", "100"
    ) as doomed:

        async def holding() -> bool:
            return await running_by("doomed") == 100

        await eventually(holding, within=15, step=0.1)
        doomed.kill()  # SIGKILL mid-batch: no release, no goodbye
        await doomed.wait()
    assert await running_by("doomed") == 100

    async with worker_process(postgres_url, "survivor", "--lease", "2"):

        async def all_done() -> bool:
            return (await queue_state(engine))["done"] == 200

        await eventually(all_done, within=30, step=0.2)
    entries = await ledger(engine)
    assert len(entries) == 200
    assert len({entry[0] for entry in entries}) == 200  # each job exactly once
    assert {entry[2] for entry in entries} == {"survivor"}
    async with engine.connect() as connection:
        rescued = await connection.scalar(select(func.count()).where(QUEUE.c.attempts == 2))
    assert rescued == 100  # the killed worker's batch ran again, once
