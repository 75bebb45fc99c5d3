"""The console's overview, read once for the dashboard page and its JSON twin."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.context import AppContext
from app.store import sync_state
from app.store.dashboard import Dashboard, count_linked_customers, load_dashboard
from app.warp.connector import SqlWarpConnector
from app.warp.search import count_customers, search_customers

SCAN_LIMIT = 20_000  # customers looked at per page of the "not linked" list
CUSTOMER_COUNTS_SECONDS = 10.0


class CustomerCounts:
    """WARP's customer count and hubsync's linked count each scan every customer (~100,000
    rows: tens of milliseconds, more than the rest of the dashboard together); they move
    slowly, so each process counts them at most every `max_age` seconds."""

    def __init__(self, max_age: float = CUSTOMER_COUNTS_SECONDS) -> None:
        self.max_age = max_age
        self._value: tuple[int | None, int] | None = None
        self._counted_at = 0.0
        self._lock = asyncio.Lock()

    async def read(self, context: AppContext) -> tuple[int | None, int]:
        async with self._lock:  # one count at a time; the others take its answer
            if self._value is None or time.monotonic() - self._counted_at > self.max_age:
                self._value = await _count(context)
                self._counted_at = time.monotonic()
            return self._value


async def _count(context: AppContext) -> tuple[int | None, int]:
    async def linked() -> int:
        async with context.engine.connect() as connection:
            return await count_linked_customers(connection)

    if not isinstance(context.warp, SqlWarpConnector):
        return None, await linked()
    total, linked_count = await asyncio.gather(count_customers(context.warp), linked())
    return total, linked_count


async def read_dashboard(context: AppContext) -> Dashboard:
    """hubsync's figures and the customer counts, read at the same time."""
    limit = context.settings.hubspot_rate_limit
    if context.customer_counts is None:
        context.customer_counts = CustomerCounts()
    counts = context.customer_counts
    dashboard, (total, linked) = await asyncio.gather(
        load_dashboard(
            context.engine, rate_limit=limit.requests, window_seconds=limit.window_seconds
        ),
        counts.read(context),
    )
    dashboard.customers_total = total
    dashboard.linked_customers = linked
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
