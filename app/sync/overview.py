"""The console's overview, read once for the dashboard page and its JSON twin."""

from __future__ import annotations

from app.context import AppContext
from app.store.dashboard import Dashboard, load_dashboard
from app.warp.connector import SqlWarpConnector
from app.warp.search import count_customers


async def read_dashboard(context: AppContext) -> Dashboard:
    limit = context.settings.hubspot_rate_limit
    async with context.engine.connect() as connection:
        dashboard = await load_dashboard(
            connection, rate_limit=limit.requests, window_seconds=limit.window_seconds
        )
    if isinstance(context.warp, SqlWarpConnector):
        dashboard.customers_total = await count_customers(context.warp)
    return dashboard
