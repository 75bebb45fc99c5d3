"""The console's overview, read once for the dashboard page and its JSON twin."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.context import AppContext
from app.store import sync_state
from app.store.dashboard import Dashboard, load_dashboard
from app.warp.connector import SqlWarpConnector
from app.warp.search import count_customers, search_customers

SCAN_LIMIT = 20_000  # customers looked at per page of the "not linked" list


async def read_dashboard(context: AppContext) -> Dashboard:
    limit = context.settings.hubspot_rate_limit
    async with context.engine.connect() as connection:
        dashboard = await load_dashboard(
            connection, rate_limit=limit.requests, window_seconds=limit.window_seconds
        )
    if isinstance(context.warp, SqlWarpConnector):
        dashboard.customers_total = await count_customers(context.warp)
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
