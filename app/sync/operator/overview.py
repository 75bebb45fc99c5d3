"""The console's overview, read once for the dashboard page and its JSON twin."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.context import AppContext
from app.store import sync_state
from app.store.dashboard import Dashboard, count_linked_customers, day_figures, load_dashboard
from app.warp.connector import SqlWarpConnector
from app.warp.search import count_customers, search_customers

SCAN_LIMIT = 20_000  # customers looked at per page of the "not linked" list
# The figures below scan many rows. While they count fewer than this in all (a small
# deployment, the tests: a few milliseconds) they are read afresh for every page; past it
# (~10 ms of index per 100,000 rows), from the last read.
CACHE_FROM_ROWS = 100_000
MIN_AGE_SECONDS = 10.0  # cached figures are read again when older than this...
COST_FACTOR = 100  # ...and than this many times their last read took (scans <= ~1 % of time)

log = logging.getLogger("hubsync.dashboard")


@dataclass(frozen=True)
class ScannedFigures:
    """The dashboard's figures that each scan many rows: every customer in WARP (~1,000,000),
    every linked one, the jobs done and the webhook events received in 24 h."""

    customers_total: int | None  # None: WARP is not a table hubsync can count
    linked: int
    done_24h: int
    events_24h: dict[str, int]
    counted_at: datetime
    took_seconds: float

    @property
    def cached(self) -> bool:
        """Served from the last read (rather than read for every page): many rows counted."""
        total = self.customers_total or 0
        return total + self.linked + self.done_24h + sum(self.events_24h.values()) >= (
            CACHE_FROM_ROWS
        )


class CostlyFigures:
    """The ScannedFigures, read at most every `MIN_AGE_SECONDS` (or `COST_FACTOR` times a read's
    duration) once they count `CACHE_FROM_ROWS` rows or more, and then in the background: a
    page answers with the last figures (saying when they were counted) and never waits for a
    scan but the first. One read at a time per process; the others take its answer."""

    def __init__(self, read: Callable[[], Awaitable[ScannedFigures]]) -> None:
        self._read = read
        self._value: ScannedFigures | None = None
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    def _too_old(self, value: ScannedFigures) -> bool:
        max_age = max(MIN_AGE_SECONDS, COST_FACTOR * value.took_seconds)
        return (datetime.now(UTC) - value.counted_at).total_seconds() >= max_age

    async def read(self) -> ScannedFigures:
        value = self._value
        if value is not None and value.cached:
            if self._too_old(value) and (self._refresh is None or self._refresh.done()):
                self._refresh = asyncio.create_task(self._reread(), name="hubsync-dashboard-counts")
            return value
        async with self._lock:
            current = self._value
            if current is None or current is value:  # nobody read them while this call waited
                current = self._value = await self._read()
            return current

    async def _reread(self) -> None:
        try:
            async with self._lock:
                self._value = await self._read()
        except Exception as exc:  # noqa: BLE001 -- the last figures stay; the next page retries
            log.warning("dashboard: counting failed: %s", type(exc).__name__)

    async def close(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)


def costly_figures_of(context: AppContext) -> CostlyFigures:
    if context.costly_figures is None:
        context.costly_figures = CostlyFigures(functools.partial(_scan, context))
    return context.costly_figures


async def _scan(context: AppContext) -> ScannedFigures:
    started, now = time.monotonic(), datetime.now(UTC)

    async def linked() -> int:
        async with context.engine.connect() as connection:
            return await count_linked_customers(connection)

    async def day() -> tuple[int, dict[str, int]]:
        async with context.engine.connect() as connection:
            return await day_figures(connection, now)

    async def total() -> int | None:
        if not isinstance(context.warp, SqlWarpConnector):
            return None
        return await count_customers(context.warp)

    total_count, linked_count, (done, events) = await asyncio.gather(total(), linked(), day())
    return ScannedFigures(
        customers_total=total_count,
        linked=linked_count,
        done_24h=done,
        events_24h=events,
        counted_at=now,
        took_seconds=time.monotonic() - started,
    )


async def read_dashboard(context: AppContext, *, per_minute: bool = True) -> Dashboard:
    """hubsync's figures and the costly ones (see CostlyFigures), read at the same time;
    `per_minute`: with the jobs finished per minute (load_dashboard)."""
    limit = context.settings.hubspot_rate_limit
    dashboard, scanned = await asyncio.gather(
        load_dashboard(
            context.engine,
            rate_limit=limit.requests,
            window_seconds=limit.window_seconds,
            per_minute=per_minute,
        ),
        costly_figures_of(context).read(),
    )
    dashboard.customers_total = scanned.customers_total
    dashboard.linked_customers = scanned.linked
    dashboard.queue["done"] = scanned.done_24h
    dashboard.webhook_events = scanned.events_24h
    if scanned.cached:  # from the last count, not this page's
        dashboard.counted_at = scanned.counted_at
    return dashboard


async def unlinked_customers(
    engine: AsyncEngine, warp: SqlWarpConnector, *, after_id: str | None, limit: int = 50
) -> list[dict[str, Any]]:
    """Customers with no active link to a HubSpot company, in id order. WARP's table may
    live in another database, so this walks it by key in chunks and asks hubsync's links."""
    found: list[dict[str, Any]] = []
    scanned = 0
    while len(found) < limit and scanned < SCAN_LIMIT:
        chunk = await search_customers(warp, "", after_id=after_id, limit=500)
        if not chunk:
            break
        scanned += len(chunk)
        async with engine.connect() as connection:
            links = await sync_state.links_by_customer(connection, [c["id"] for c in chunk])
        for record in chunk:
            link = links.get(record["id"])
            if link is None or link.state != "active":
                found.append(record)
                if len(found) == limit:
                    break
        after_id = chunk[-1]["id"]
    return found
