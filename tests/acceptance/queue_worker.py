"""A worker OS process for the multi-process queue tests.

    python -m tests.acceptance.queue_worker URL WORKER_ID [--lease S] [--batch N] [--stuck]

It runs a real `Worker` with a LISTEN connection. Its handler writes one row per job into
`queue_ledger` (job id, entity, worker, start, end) — or, with --stuck, sleeps forever so the
test can `kill -9` it mid-batch. SIGTERM stops it gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import time
from collections.abc import Sequence

from sqlalchemy import Column, Float, Integer, MetaData, String, Table

from app.store.db import create_engine
from app.store.queue import QueueRepository
from app.sync.core.backoff import RetryPolicy
from app.sync.core.jobs import ClaimedJob, JobOutcome, OutcomeStatus
from app.sync.worker.notify import QueueListener
from app.sync.worker.worker import Worker

LEDGER = Table(
    "queue_ledger",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, nullable=False),
    Column("entity_key", String(64), nullable=False),
    Column("worker", String(128), nullable=False),
    Column("started", Float, nullable=False),
    Column("ended", Float, nullable=False),
)


async def run(url: str, worker_id: str, lease: float, batch: int, stuck: bool) -> None:
    engine = create_engine(url, pool_size=4)
    queue = QueueRepository(engine, policy=RetryPolicy(base_seconds=0.5))

    async def handler(jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        started = time.time()
        if stuck:
            await asyncio.sleep(3600)
        await asyncio.sleep(random.uniform(0.001, 0.01))
        ended = time.time()
        rows = [
            {"job_id": j.id, "entity_key": j.entity_key, "worker": worker_id, "started": started,
             "ended": ended}
            for j in jobs
        ]  # fmt: skip
        async with engine.begin() as connection:
            await connection.execute(LEDGER.insert(), rows)
        return [JobOutcome(j.id, OutcomeStatus.DONE) for j in jobs]

    worker = Worker(
        queue,
        handler,
        worker_id=worker_id,
        batch_size=batch,
        lease_seconds=lease,
        poll_interval=0.5,
    )
    listener = QueueListener(url, worker.wake)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await worker.start()
    await listener.start()
    try:
        await stop.wait()
    finally:
        await listener.stop()
        await worker.stop()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("worker_id")
    parser.add_argument("--lease", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--stuck", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args.url, args.worker_id, args.lease, args.batch, args.stuck))


if __name__ == "__main__":
    main()
