"""The in-process scheduler (APScheduler 3) and the queue's one-minute backstop tick.

APScheduler 3's own documentation says its job stores cannot be shared between processes, so
every replica keeps its scheduled jobs in memory and every replica fires every tick. That is
safe because each tick is idempotent: waking the local worker, rescuing expired leases (row
locks with SKIP LOCKED, re-checked on write) and pruning old done jobs (bounded deletes) give
the same end state whether one replica runs them or five. Tasks that must run once per fire
time across the deployment (the daily reconciliation) claim a `hubsync_scheduler_ticks` row
first; they add their own jobs to the same scheduler.

Every job goes on the scheduler through `app.sync.schedule.registry.schedule_job`, which
makes sure APScheduler awaits it and records each run where every replica can see it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.store.idempotency import IdempotencyRepository
from app.store.queue import QueueRepository
from app.sync.worker.worker import Worker

log = logging.getLogger("hubsync.scheduler")

QUEUE_TICK_JOB_ID = "queue-maintenance"
HISTORY_PRUNING_JOB_ID = "history-pruning"
IDEMPOTENCY_RETENTION = timedelta(hours=24)


def build_scheduler() -> AsyncIOScheduler:
    """A scheduler on the running event loop, in UTC, with in-memory job stores. Call
    `start()` inside the lifespan (it binds to the running loop) and `shutdown()` on exit."""
    return AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
    )


@dataclass
class QueueTick:
    """The backstop that keeps the queue moving even if every wake-up was missed."""

    queue: QueueRepository
    worker: Worker | None
    idempotency: IdempotencyRepository | None
    retention: timedelta

    async def __call__(self) -> None:
        if self.worker is not None and self.worker.running:
            self.worker.wake()
        rescued = await self.queue.rescue_expired()
        pruned = await self.queue.prune_done(self.retention)
        forgotten = 0
        if self.idempotency is not None:
            forgotten = await self.idempotency.prune(IDEMPOTENCY_RETENTION)
        if rescued or pruned or forgotten:
            log.info(
                "queue tick: rescued %d, pruned %d done job(s), forgot %d idempotency key(s)",
                rescued,
                pruned,
                forgotten,
            )
