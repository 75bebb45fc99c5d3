"""The dashboard, and the two fragments its page polls every 5 s through htmx (vendored in
static/vendor/, no inline script): the figures (`/admin/fragments/figures`) and the charts
over one range (`/admin/fragments/charts?range=1h|24h|7d`). The page renders both fragments'
templates itself, so it is whole without script too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.admin.access import Session
from app.admin.chart import DEFAULT_RANGE, RANGES, Range, build_charts
from app.admin.rendering import render, signed_in
from app.api.deps import app_context
from app.api.query import query_choice
from app.store.timeseries import series_until_now
from app.sync.operator.overview import read_dashboard
from app.sync.reconcile.schedule import next_fire_time, utc_now


def _range(request: Request) -> Range:
    """`range`: one of 1h, 24h, 7d (absent: 1h); anything else is the API's 422 naming it."""
    key = query_choice(request, "range", RANGES, default=DEFAULT_RANGE)
    return RANGES[key or DEFAULT_RANGE]


async def _figures(request: Request) -> dict[str, Any]:
    context = app_context(request)
    return {
        "data": await read_dashboard(context, per_minute=False),  # the page charts samples
        "as_of": utc_now(),
        "next_reconciliation": next_fire_time(context.settings.reconcile_cron, utc_now()),
    }


async def _charts(request: Request, span: Range) -> dict[str, Any]:
    context = app_context(request)
    limit = context.settings.hubspot_rate_limit
    per_minute = round(limit.requests * 60 / limit.window_seconds)
    async with context.engine.connect() as connection:
        now, samples = await series_until_now(
            connection,
            utc_now() - timedelta(minutes=span.minutes + span.bucket_minutes),
            limit_per_minute=per_minute,
            bucket_minutes=span.bucket_minutes,
        )
    return {"charts": build_charts(samples, now, span), "span": span, "ranges": RANGES}


@signed_in
async def dashboard(request: Request, session: Session) -> Response:
    span = _range(request)
    return await render(
        request,
        session,
        "dashboard.html",
        **await _figures(request),
        **await _charts(request, span),
    )


@signed_in
async def figures_fragment(request: Request, session: Session) -> Response:
    return await render(request, session, "dashboard_figures.html", **await _figures(request))


@signed_in
async def charts_fragment(request: Request, session: Session) -> Response:
    span = _range(request)
    return await render(request, session, "dashboard_charts.html", **await _charts(request, span))
