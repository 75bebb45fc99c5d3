"""The figures of the operator's dashboard, each from an index rather than a full scan, so the
page stays fast with a million log rows and a hundred thousand customers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store.catchup import Watermark, watermarks
from app.store.models import (
    GENERAL_BUCKET,
    Conflict,
    EntityLink,
    RateLimitGrant,
    RateLimitPause,
    WebhookEvent,
    table_of,
)
from app.store.operations import last_reconciliation
from app.store.pauses import Pause, paused_directions
from app.store.queue.records import DONE, FAILED, PENDING, QUEUE, STATES, as_utc
from app.store.report_outbox import delivery_figures
from app.store.scheduled_jobs import ScheduledJobStatus, load_scheduled_jobs
from app.store.webhook_events import STATUSES as EVENT_STATUSES

events = table_of(WebhookEvent)
conflicts = table_of(Conflict)
links = table_of(EntityLink)
grants = table_of(RateLimitGrant)
limit_pauses = table_of(RateLimitPause)

CHART_MINUTES = 180
RECENT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class MinuteCount:
    minute: datetime
    done: int
    failed: int


@dataclass
class Dashboard:
    queue: dict[str, int]
    oldest_pending: dict[str, Any] | None
    per_minute: list[MinuteCount]
    webhook_events: dict[str, int]
    open_conflicts: int
    linked_customers: int
    hubspot_window: dict[str, Any]
    last_reconciliation: dict[str, Any] | None
    paused: dict[str, Pause] = field(default_factory=dict)
    customers_total: int | None = None  # WARP's count, when WARP is a table hubsync can count
    scheduled_jobs: list[ScheduledJobStatus] = field(default_factory=list)
    # The catch-up's progress per side, with any search window it could not read in full.
    catch_up: list[Watermark] = field(default_factory=list)
    # The reports' outbox (app/store/report_outbox.py): rows per state, the latest ones.
    report_deliveries: dict[str, Any] = field(default_factory=dict)
    # When the customers, done (24 h) and webhook events (24 h) were counted, when that was
    # not for this answer (app/sync/operator/overview.py, CostlyFigures).
    counted_at: datetime | None = None

    @property
    def customers_not_linked(self) -> int | None:
        if self.customers_total is None:
            return None
        return max(0, self.customers_total - self.linked_customers)

    def to_json(self) -> dict[str, Any]:
        return {
            "queue": {"by_state": self.queue, "oldest_pending": self.oldest_pending},
            "jobs_per_minute": [
                {"minute": m.minute.isoformat(), "done": m.done, "failed": m.failed}
                for m in self.per_minute
            ],
            "webhook_events_24h": self.webhook_events,
            "open_conflicts": self.open_conflicts,
            "customers": {
                "total": self.customers_total,
                "linked": self.linked_customers,
                "not_linked": self.customers_not_linked,
            },
            "hubspot": self.hubspot_window,
            "last_reconciliation": self.last_reconciliation,
            "paused": [pause.to_json() for pause in self.paused.values()],
            "scheduled_jobs": [job.to_json() for job in self.scheduled_jobs],
            "catch_up": [mark.to_json() for mark in self.catch_up],
            "report_deliveries": self.report_deliveries,
            "counted_at": None if self.counted_at is None else self.counted_at.isoformat(),
        }


async def oldest_pending(connection: AsyncConnection, now: datetime) -> dict[str, Any] | None:
    row = (
        await connection.execute(
            select(QUEUE.c.id, QUEUE.c.created_at, QUEUE.c.entity_key)
            .where(QUEUE.c.state == PENDING)
            .order_by(QUEUE.c.id)
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    created = as_utc(row.created_at)
    return {
        "job_id": row.id,
        "entity_key": row.entity_key,
        "created_at": created.isoformat(),
        "waiting_seconds": max(0, int((now - created).total_seconds())),
    }


async def jobs_per_minute(
    connection: AsyncConnection, now: datetime, minutes: int = CHART_MINUTES
) -> list[MinuteCount]:
    """Jobs finished done / failed in each of the last `minutes` minutes (zeros included)."""
    start = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    if connection.dialect.name == "postgresql":
        bucket = func.date_trunc("minute", QUEUE.c.finished_at)
    else:
        bucket = func.strftime("%Y-%m-%dT%H:%M:00", QUEUE.c.finished_at)
    rows = await connection.execute(
        select(bucket.label("minute"), QUEUE.c.state, func.count())
        .where(QUEUE.c.finished_at >= start, QUEUE.c.state.in_([DONE, FAILED]))
        .group_by(bucket, QUEUE.c.state)
    )
    found: dict[tuple[datetime, str], int] = {}
    for minute, state, count in rows:
        moment = minute if isinstance(minute, datetime) else datetime.fromisoformat(minute)
        found[(as_utc(moment).replace(second=0, microsecond=0), state)] = int(count)
    series = []
    for offset in range(minutes):
        minute = start + timedelta(minutes=offset)
        series.append(
            MinuteCount(minute, found.get((minute, DONE), 0), found.get((minute, FAILED), 0))
        )
    return series


async def hubspot_window(
    connection: AsyncConnection,
    now: datetime,
    limit: int,
    window_seconds: float,
    *,
    used: int | None,
) -> dict[str, Any]:
    """HubSpot requests granted in the current window (`used`: recorded on PostgreSQL, where
    the limit is shared), the headroom left, and the latest 429 pause."""
    pause = (
        await connection.execute(
            select(limit_pauses).order_by(limit_pauses.c.until.desc()).limit(1)
        )
    ).first()
    until = as_utc(pause.until) if pause is not None else None
    return {
        "limit": limit,
        "window_seconds": window_seconds,
        "used": used,
        "headroom": None if used is None else max(0, limit - used),
        "last_429": None
        if pause is None or until is None
        else {"until": until.isoformat(), "reason": pause.reason, "active": until > now},
    }


async def _last_reconciliation_json(connection: AsyncConnection) -> dict[str, Any] | None:
    run = await last_reconciliation(connection)
    return None if run is None else run.to_json()


async def counted_figures(
    connection: AsyncConnection, now: datetime, window_seconds: float
) -> dict[str, int]:
    """The dashboard's small counts in one statement (one round trip), each a scalar
    subquery over an index: the queue's live states, open conflicts, and (PostgreSQL)
    HubSpot requests in the current window. (The day's counts: `day_figures`.)"""

    def count(*where: Any) -> Any:
        return select(func.count()).where(*where).scalar_subquery()

    columns = {
        **{f"queue_{state}": count(QUEUE.c.state == state) for state in STATES if state != DONE},
        "open_conflicts": count(conflicts.c.state == "open"),
    }
    if connection.dialect.name == "postgresql":
        columns["hubspot_used"] = count(
            grants.c.bucket == GENERAL_BUCKET,
            grants.c.granted_at > now - timedelta(seconds=window_seconds),
        )
    row = (await connection.execute(select(*(c.label(n) for n, c in columns.items())))).one()
    return {name: int(value or 0) for name, value in row._mapping.items()}


async def day_figures(connection: AsyncConnection, now: datetime) -> tuple[int, dict[str, int]]:
    """Jobs done and webhook events by status in the 24 h before `now`, in one statement.
    Each is a range of an index read alone (state, finished_at; status, received_at), but a
    busy day holds hundreds of thousands of rows: the dashboard caches these
    (app/sync/operator/overview.py)."""

    def count(*where: Any) -> Any:
        return select(func.count()).where(*where).scalar_subquery()

    since = now - RECENT_WINDOW
    columns = {
        "done": count(QUEUE.c.state == DONE, QUEUE.c.finished_at >= since),
        **{
            status: count(events.c.status == status, events.c.received_at >= since)
            for status in EVENT_STATUSES
        },
    }
    row = (await connection.execute(select(*(c.label(n) for n, c in columns.items())))).one()
    counted = {name: int(value or 0) for name, value in row._mapping.items()}
    done = counted.pop("done")
    return done, counted


async def count_linked_customers(connection: AsyncConnection) -> int:
    linked = await connection.scalar(
        select(func.count()).where(links.c.warp_customer_id.is_not(None), links.c.state == "active")
    )
    return int(linked or 0)


async def load_dashboard(
    engine: AsyncEngine, *, rate_limit: int, window_seconds: float, per_minute: bool = True
) -> Dashboard:
    """The figures in two groups read at once, each on its own connection: the page costs
    its slower group rather than the sum. (The customers and the day's counts: see
    app/sync/operator/overview.py.) `per_minute`: also the jobs finished per minute over 3 h
    (the API's; the page charts the minute samples instead)."""
    now = datetime.now(UTC)

    async def counts() -> dict[str, int]:
        async with engine.connect() as connection:
            return await counted_figures(connection, now, window_seconds)

    async def the_rest() -> Dashboard:
        async with engine.connect() as connection:
            return Dashboard(
                queue={},
                oldest_pending=await oldest_pending(connection, now),
                per_minute=await jobs_per_minute(connection, now) if per_minute else [],
                webhook_events={},
                open_conflicts=0,
                linked_customers=0,
                hubspot_window=await hubspot_window(
                    connection, now, rate_limit, window_seconds, used=None
                ),
                last_reconciliation=await _last_reconciliation_json(connection),
                paused=await paused_directions(connection),
                scheduled_jobs=await load_scheduled_jobs(connection, now),
                catch_up=await watermarks(connection),
                report_deliveries=await delivery_figures(connection),
            )

    counted, dashboard = await asyncio.gather(counts(), the_rest())
    # Done (24 h) and the webhook events: day_figures, read by the caller.
    dashboard.queue = {state: counted.get(f"queue_{state}", 0) for state in STATES}
    dashboard.open_conflicts = counted["open_conflicts"]
    if "hubspot_used" in counted:
        used = counted["hubspot_used"]
        dashboard.hubspot_window.update(used=used, headroom=max(0, rate_limit - used))
    return dashboard
