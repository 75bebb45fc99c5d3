"""The live dashboard in a real browser (Debian's Chromium through Playwright) against a real
`hubsync serve` on PostgreSQL with the built-in sandbox: a figure changes after a sync without
the page reloading (htmx, vendored, under the console's CSP with no violation), and every
chart over 1 h, 24 h and 7 d is drawn with its axes. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Response, expect
from sqlalchemy import func, insert, select

from app.store.models import MinuteSample, SyncJob, table_of
from app.store.timeseries import minute_of
from app.warp.demo import DEMO_CUSTOMERS
from tests.browser.console_server import ROOT, Console, open_browser, sign_in, start_console

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
CHARTS = ["jobs", "queue", "wait", "webhooks", "hubspot", "rate-limited", "latency"]


@pytest.fixture
async def console(postgres_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    async for running in start_console(postgres_url, tmp_path):
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async for opened in open_browser():
        yield opened


async def seed_a_week(console: Console) -> None:
    """A week of minute samples before now (a daily rhythm, a bad hour with failures and
    429s) and one failed job, so the 24 h and 7 d charts and the alarms have something to
    show. The minutes the running service samples itself are left alone."""
    now = minute_of(datetime.now(UTC))
    rows = []
    # Every minute of the last three hours, every third one before (fewer rows to insert).
    for m in [*range(5, 180), *range(180, 7 * 24 * 60, 3)]:
        minute = now - timedelta(minutes=m)
        day = 0.5 + 0.5 * math.sin((minute.hour + minute.minute / 60) / 24 * 2 * math.pi)
        bad = 3 * 60 <= m < 4 * 60
        rows.append(
            {
                "minute": minute,
                "jobs_done": int(20 + 180 * day),
                "jobs_failed": 6 if bad else int(m % 97 == 0),
                "queue_depth": int(5 + 60 * day) + (400 if bad else 0),
                "oldest_wait_seconds": 2 + 20 * day + (300 if bad else 0),
                "webhook_events": int(10 + 90 * day),
                "hubspot_requests": min(600, int(60 + 480 * day) + (200 if bad else 0)),
                "hubspot_limit": 600,
                "hubspot_429": 4 if bad else 0,
                "latency_p50_ms": 400 + 900 * day + (4000 if bad else 0),
                "latency_p99_ms": 1500 + 3000 * day + (20000 if bad else 0),
            }
        )
    async with console.engine.begin() as connection:
        await connection.execute(insert(table_of(MinuteSample)), rows)
        await connection.execute(
            insert(table_of(SyncJob)).values(
                entity_type="customer",
                entity_key="00000000-0000-0000-0000-00000000dead",
                state="failed",
                last_error="HubSpot answered 400: Property values were not valid",
                finished_at=datetime.now(UTC),
            )
        )


async def check_charts(page: Page) -> None:
    for key in CHARTS:
        chart = page.locator(f"figure[data-chart={key}] svg.chart")
        await expect(chart).to_be_visible()
        assert await chart.locator("title").first.inner_html() != ""
        await expect(chart.locator(".y-axis text")).to_have_count(3)
        assert await chart.locator(".x-axis text").count() >= 5
        assert await chart.locator(".y-axis line").count() >= 4  # the axis and its 3 ticks
        box = await chart.bounding_box()
        assert box is not None, key
        assert box["width"] > 300, key
        assert box["height"] > 60, key


async def test_figures_change_without_a_reload_and_every_chart_has_axes(
    console: Console, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # A refused resource is checked by its response below (the browser's own
        # /favicon.ico request is not the dashboard's).
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    def on_response(response: Response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            problems.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("response", on_response)
    page.on("pageerror", lambda error: problems.append(str(error)))
    await sign_in(page, console.base)
    await expect(page.locator("h1")).to_have_text("Sync health")

    # A mark in this document: a full reload would lose it.
    await page.evaluate("window.sameDocument = 'yes'")
    done = page.locator("[data-figure=queue-done]")
    before = int(await done.inner_text())
    as_of = await page.locator("[data-figure=as-of]").inner_text()
    queued = await console.api.post(
        "/v1/sync/customers/queue", json={"customer_ids": [DEMO_CUSTOMERS[0]["id"]]}
    )
    assert queued.status_code == 202, queued.text
    await expect(done).to_have_text(str(before + 1), timeout=20_000)
    assert await page.evaluate("window.sameDocument") == "yes"
    assert await page.locator("[data-figure=as-of]").inner_text() != as_of
    # The job just done is in the hour's chart too (the minute in progress is read live).
    await expect(page.locator("figure[data-chart=jobs] rect.bar.done").first).to_be_visible()
    assert await page.evaluate("window.sameDocument") == "yes"

    # The running service's scheduler sampled a minute at start (seen in its database).
    async def sampled() -> bool:
        async with console.engine.connect() as connection:
            rows = await connection.scalar(select(func.count()).select_from(MinuteSample))
        return bool(rows)

    await console.wait_for(sampled, timeout=30)
    await seed_a_week(console)
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for key in ("7d", "24h", "1h"):
        await page.goto(f"{console.base}/admin/?range={key}")
        await expect(page.locator(f"div.charts[data-range='{key}']")).to_be_visible()
        await check_charts(page)
        await expect(page.locator("dt", has_text="needs attention")).to_be_visible()
        await page.screenshot(path=str(DOCS_SCREENSHOTS / f"dashboard-{key}.png"), full_page=True)
    # The hour's charts refresh in place as well.
    await page.evaluate("window.sameDocument = 'still'")
    async with page.expect_response(lambda r: "/admin/fragments/charts?range=1h" in r.url):
        pass
    await check_charts(page)
    assert await page.evaluate("window.sameDocument") == "still"
    assert problems == []  # no CSP violation, no script error
    await context.close()
