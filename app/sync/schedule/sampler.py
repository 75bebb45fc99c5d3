"""The dashboard's sampler: once a minute, every replica with the scheduler on writes the
minute just over to `hubsync_minute_samples` (app/store/timeseries.py) and deletes samples
past the retention. Reading the same database, replicas compute the same row; the first
write wins, and each adds the HubSpot 429s its own process saw since its previous sample
(and, on SQLite, where the grants log is this one process's memory, its requests)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.instruments import hubspot_totals
from app.settings import RateLimit
from app.store.queue.maintenance import database_now
from app.store.timeseries import (
    MINUTE,
    add_process_counts,
    minute_of,
    prune_samples,
    read_minute,
    record_minute,
)
from app.sync.schedule.registry import JobBook, schedule_job

log = logging.getLogger("hubsync.sampler")

SAMPLER_JOB_ID = "minute-samples"
SAMPLE_SECONDS = 60.0


@dataclass
class MinuteSampler:
    engine: AsyncEngine
    limit: RateLimit
    totals: Callable[[], tuple[int, int]] = hubspot_totals
    _last: tuple[int, int] = field(default=(0, 0), init=False)

    def __post_init__(self) -> None:
        # Counted from here: what the process did before the sampler existed is no minute's.
        self._last = self.totals()

    @property
    def limit_per_minute(self) -> int:
        return round(self.limit.requests * 60 / self.limit.window_seconds)

    async def __call__(self) -> None:
        async with self.engine.begin() as connection:
            now = await database_now(connection)  # one clock for every replica
            minute = minute_of(now) - MINUTE
            sample = await read_minute(
                connection, minute, now, limit_per_minute=self.limit_per_minute
            )
            await record_minute(connection, sample)
            requests, rate_limited = self.totals()
            made, limited = requests - self._last[0], rate_limited - self._last[1]
            self._last = (requests, rate_limited)
            local = None if connection.dialect.name == "postgresql" else made
            await add_process_counts(connection, minute, rate_limited=limited, requests=local)
            pruned = await prune_samples(connection, now)
        if pruned:
            log.info("minute samples: pruned %d past the retention", pruned)


async def schedule_sampler(
    scheduler: Any,
    engine: AsyncEngine,
    limit: RateLimit,
    *,
    book: JobBook | None,
    seconds: float = SAMPLE_SECONDS,
) -> MinuteSampler:
    sampler = MinuteSampler(engine, limit)
    await schedule_job(
        scheduler,
        SAMPLER_JOB_ID,
        "sample the dashboard's figures of the minute just over",
        IntervalTrigger(seconds=seconds, timezone=UTC),
        sampler,
        book=book,
        # The first sample at start: after a restart the minute just over is not missing.
        next_run_time=datetime.now(UTC),
    )
    return sampler
