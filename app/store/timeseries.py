"""The console's time series: one row per minute in `hubsync_minute_samples`, written by the
scheduler's sampler (app/sync/schedule/sampler.py) and kept for `RETENTION`, so the dashboard
charts a week of health from the database alone (no Prometheus needed).

Each figure of a minute is derived from what the database already holds, read when the minute
is over: jobs done and failed (the queue's `finished_at`), webhook events received, HubSpot
requests granted (the PostgreSQL grants log), queue -> HubSpot latency (a done job's creation
to its end), and, at sampling time, the queue's depth and its oldest wait. Every replica
samples; the first to write a minute wins (the same reads give the same counts), so the table
holds one row per minute however many replicas run. Only 429s are not in the database as a
count: each replica adds those its own process saw (`add_rate_limited`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import quantiles
from typing import Any

from sqlalchemy import ColumnElement, Integer, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import GENERAL_BUCKET, MinuteSample, RateLimitGrant, WebhookEvent, table_of
from app.store.queue.maintenance import database_now
from app.store.queue.records import DONE, FAILED, PENDING, QUEUE, SQL_STATE, as_utc
from app.store.upsert import insert_for
from app.store.webhook_events import STATUSES as EVENT_STATUSES

SAMPLES = table_of(MinuteSample)
EVENTS = table_of(WebhookEvent)
GRANTS = table_of(RateLimitGrant)
RETENTION = timedelta(days=8)  # the 7-day chart, and a day to spare
MINUTE = timedelta(minutes=1)
# Jobs that write to HubSpot: their latency is the queue -> HubSpot figure (as in /metrics).
TO_HUBSPOT = ("to_hubspot",)


@dataclass(frozen=True)
class Sample:
    minute: datetime
    jobs_done: int
    jobs_failed: int
    queue_depth: int
    oldest_wait_seconds: float
    webhook_events: int
    hubspot_requests: int | None
    hubspot_limit: int
    hubspot_429: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


async def read_minute(
    connection: AsyncConnection, minute: datetime, now: datetime, *, limit_per_minute: int
) -> Sample:
    """The figures of the minute starting at `minute` (over by `now`), each over an index."""
    end = minute + MINUTE
    finished = {
        state: int(count)
        for state, count in await connection.execute(
            select(QUEUE.c.state, func.count())
            .where(
                QUEUE.c.finished_at >= minute,
                QUEUE.c.finished_at < end,
                QUEUE.c.state.in_([DONE, FAILED]),
            )
            .group_by(QUEUE.c.state)
        )
    }
    depth = await connection.scalar(
        select(func.count()).select_from(QUEUE).where(QUEUE.c.state == SQL_STATE[PENDING])
    )
    oldest = await connection.scalar(
        select(func.min(QUEUE.c.created_at)).where(
            QUEUE.c.state == SQL_STATE[PENDING], QUEUE.c.run_at <= now
        )
    )
    # Every status listed, so the (status, received_at) index answers the range.
    events = await connection.scalar(
        select(func.count())
        .select_from(EVENTS)
        .where(
            EVENTS.c.status.in_(EVENT_STATUSES),
            EVENTS.c.received_at >= minute,
            EVENTS.c.received_at < end,
        )
    )
    requests: int | None = None
    if connection.dialect.name == "postgresql":
        requests = int(
            await connection.scalar(
                select(func.count())
                .select_from(GRANTS)
                .where(
                    GRANTS.c.bucket == GENERAL_BUCKET,
                    GRANTS.c.granted_at >= minute,
                    GRANTS.c.granted_at < end,
                )
            )
            or 0
        )
    p50, p99 = await _latency(connection, minute, end)
    return Sample(
        minute=minute,
        jobs_done=finished.get(DONE, 0),
        jobs_failed=finished.get(FAILED, 0),
        queue_depth=int(depth or 0),
        oldest_wait_seconds=(
            max(0.0, (now - as_utc(oldest)).total_seconds()) if oldest is not None else 0.0
        ),
        webhook_events=int(events or 0),
        hubspot_requests=requests,
        hubspot_limit=limit_per_minute,
        hubspot_429=0,
        latency_p50_ms=p50,
        latency_p99_ms=p99,
    )


async def _latency(
    connection: AsyncConnection, start: datetime, end: datetime
) -> tuple[float | None, float | None]:
    """p50 and p99 of queue -> HubSpot latency over the jobs done in [start, end)."""
    where = (
        QUEUE.c.finished_at >= start,
        QUEUE.c.finished_at < end,
        QUEUE.c.state == DONE,
        QUEUE.c.direction.in_(TO_HUBSPOT),
    )
    if connection.dialect.name == "postgresql":
        millis = func.extract("epoch", QUEUE.c.finished_at - QUEUE.c.created_at) * 1000
        row = (
            await connection.execute(
                select(
                    func.percentile_cont(0.5).within_group(millis),
                    func.percentile_cont(0.99).within_group(millis),
                ).where(*where)
            )
        ).one()
        return _maybe_float(row[0]), _maybe_float(row[1])
    times = [
        (as_utc(finished) - as_utc(created)).total_seconds() * 1000
        for created, finished in await connection.execute(
            select(QUEUE.c.created_at, QUEUE.c.finished_at).where(*where)
        )
    ]
    return percentile(times, 50), percentile(times, 99)


def percentile(values: list[float], which: int) -> float | None:
    """The `which`-th percentile, interpolated as PostgreSQL's percentile_cont does."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return quantiles(values, n=100, method="inclusive")[which - 1]


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)


async def record_minute(connection: AsyncConnection, sample: Sample) -> bool:
    """Write the minute unless a replica did already; True when this call wrote it."""
    values = {
        "minute": sample.minute,
        "jobs_done": sample.jobs_done,
        "jobs_failed": sample.jobs_failed,
        "queue_depth": sample.queue_depth,
        "oldest_wait_seconds": sample.oldest_wait_seconds,
        "webhook_events": sample.webhook_events,
        "hubspot_requests": sample.hubspot_requests,
        "hubspot_limit": sample.hubspot_limit,
        "hubspot_429": 0,
        "latency_p50_ms": sample.latency_p50_ms,
        "latency_p99_ms": sample.latency_p99_ms,
    }
    statement = insert_for(connection, SAMPLES).values(**values).on_conflict_do_nothing()
    result = await connection.execute(statement)
    return bool(result.rowcount)


async def add_process_counts(
    connection: AsyncConnection, minute: datetime, *, rate_limited: int, requests: int | None
) -> None:
    """Add what only this process knows to the minute's row: the 429s it saw, and (where the
    grants log lives in its memory, i.e. SQLite) the requests it made."""
    changes: dict[str, Any] = {}
    if rate_limited:
        changes["hubspot_429"] = SAMPLES.c.hubspot_429 + rate_limited
    if requests is not None:
        changes["hubspot_requests"] = func.coalesce(SAMPLES.c.hubspot_requests, 0) + requests
    if changes:
        await connection.execute(update(SAMPLES).where(SAMPLES.c.minute == minute).values(changes))


async def prune_samples(connection: AsyncConnection, now: datetime) -> int:
    result = await connection.execute(delete(SAMPLES).where(SAMPLES.c.minute < now - RETENTION))
    return int(result.rowcount or 0)


async def read_samples(connection: AsyncConnection, since: datetime) -> list[Sample]:
    """The samples from `since` on, oldest first (at most 8 days: ~11,500 rows)."""
    rows = await connection.execute(
        select(SAMPLES).where(SAMPLES.c.minute >= since).order_by(SAMPLES.c.minute)
    )
    return [
        Sample(
            minute=as_utc(row.minute),
            jobs_done=row.jobs_done,
            jobs_failed=row.jobs_failed,
            queue_depth=row.queue_depth,
            oldest_wait_seconds=row.oldest_wait_seconds,
            webhook_events=row.webhook_events,
            hubspot_requests=row.hubspot_requests,
            hubspot_limit=row.hubspot_limit,
            hubspot_429=row.hubspot_429,
            latency_p50_ms=row.latency_p50_ms,
            latency_p99_ms=row.latency_p99_ms,
        )
        for row in rows
    ]


async def read_buckets(
    connection: AsyncConnection, since: datetime, bucket_minutes: int
) -> list[Sample]:
    """The samples from `since` summed up per bucket of `bucket_minutes` in the database (a
    week is ~10,000 rows; the page gets 168): counts and the limit added, the queue's depth,
    its wait and p99 latency at their highest, p50 latency averaged. Each bucket comes back
    as one Sample at the bucket's start."""
    step = bucket_minutes * 60
    key: ColumnElement[Any]
    if connection.dialect.name == "postgresql":
        epoch: Any = func.extract("epoch", SAMPLES.c.minute)
        key = func.floor(epoch / step)
    else:
        # Seconds since 1970 from the Julian day (faster than strftime('%s') on SQLite's text
        # timestamps); the half second keeps a float just under a boundary in its bucket.
        seconds = (func.julianday(SAMPLES.c.minute) - 2440587.5) * 86400 + 0.5
        key = func.cast(seconds / step, Integer)
    c = SAMPLES.c
    rows = await connection.execute(
        select(
            key.label("bucket"),
            func.sum(c.jobs_done),
            func.sum(c.jobs_failed),
            func.max(c.queue_depth),
            func.max(c.oldest_wait_seconds),
            func.sum(c.webhook_events),
            func.sum(c.hubspot_requests),
            func.sum(c.hubspot_limit),
            func.sum(c.hubspot_429),
            func.avg(c.latency_p50_ms),
            func.max(c.latency_p99_ms),
        )
        .where(c.minute >= since)
        .group_by(key)
        .order_by(key)
    )
    return [
        Sample(
            minute=datetime.fromtimestamp(int(row[0]) * step, UTC),
            jobs_done=int(row[1]),
            jobs_failed=int(row[2]),
            queue_depth=int(row[3]),
            oldest_wait_seconds=float(row[4]),
            webhook_events=int(row[5]),
            hubspot_requests=None if row[6] is None else int(row[6]),
            hubspot_limit=int(row[7]),
            hubspot_429=int(row[8]),
            latency_p50_ms=_maybe_float(row[9]),
            latency_p99_ms=_maybe_float(row[10]),
        )
        for row in rows
    ]


async def series_until_now(
    connection: AsyncConnection, since: datetime, *, limit_per_minute: int, bucket_minutes: int
) -> tuple[datetime, list[Sample]]:
    """The samples from `since` (per bucket when `bucket_minutes` > 1), and the minute in
    progress (and the one just over, until the sampler writes it) read live, so a chart moves
    within seconds of the work. Returns the database's now and the samples."""
    now = await database_now(connection)
    current = minute_of(now)
    if bucket_minutes > 1:
        samples = await read_buckets(connection, since, bucket_minutes)
        have = {
            as_utc(minute)
            for minute in await connection.scalars(
                select(SAMPLES.c.minute).where(SAMPLES.c.minute >= current - MINUTE)
            )
        }
    else:
        samples = await read_samples(connection, since)
        have = {sample.minute for sample in samples}
    for minute in (current - MINUTE, current):
        if minute not in have and minute >= since:
            samples.append(
                await read_minute(connection, minute, now, limit_per_minute=limit_per_minute)
            )
    return now, sorted(samples, key=lambda sample: sample.minute)
