"""The console pages that say who and what, in a real browser (Debian's Chromium through
Playwright) against a real `hubsync serve` on PostgreSQL with the built-in sandbox: a failed
job's page shows HubSpot's message; the Rules page fits at 1,280 px; "read HubSpot now"
shows a change whose webhook was lost; a reconciliation shows its progress while it runs.
Screenshots go to docs/screenshots/ (linked from the README)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from app.store.models import SyncJob
from tests.browser.console_server import ROOT, Console, open_browser, sign_in, start_console
from tests.browser.test_console import (
    ACME,
    GLOBEX,
    _is,
    company_of,
    job_state,
    queue_customer,
    scalar,
    set_warp,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
DOCS = ROOT / "docs" / "screenshots"


async def shot(page: Page, name: str) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


@pytest.fixture
async def console(postgres_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    async for running in start_console(postgres_url, tmp_path):
        yield running


@pytest.fixture
async def page(console: Console) -> AsyncIterator[Page]:
    browser: Browser
    async for browser in open_browser():
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        opened = await context.new_page()
        await sign_in(opened, console.base)
        await expect(opened.locator("h1")).to_have_text("Sync health")
        yield opened
        await context.close()


async def test_a_failed_jobs_page_shows_hubspots_message(page: Page, console: Console) -> None:
    faults = await console.api.put(
        "/_hubspot/_sandbox/faults", json={"error_rate": 1.0, "statuses": [400]}
    )
    assert faults.status_code == 200, faults.text
    await set_warp(console, GLOBEX["id"], status="SUSPENDED")
    job_id = await queue_customer(console, GLOBEX["id"])
    await console.wait_for(lambda: _is(job_state(console, job_id), "failed"))
    await console.api.put("/_hubspot/_sandbox/faults", json={"error_rate": 0.0})
    stored = str(await scalar(console, select(SyncJob.last_error).where(SyncJob.id == job_id)))
    parts = re.match(r"^\d{3}(?: [A-Z_]+)?: (.*) \(correlation id ([^)]+)\)$", stored, re.S)
    assert parts, stored
    message, correlation = parts.group(1), parts.group(2)

    await page.goto(f"{console.base}/admin/failed")
    row = page.locator("tr", has=page.locator(f"#retry-{job_id}"))
    await expect(row).to_contain_text(f"{GLOBEX['ban']} · {GLOBEX['company_name']}")
    await shot(page, "failed")
    await row.locator(f"a[href='/admin/jobs/{job_id}']").click()
    await expect(page.locator("h1")).to_contain_text(f"Job {job_id}")
    await expect(page.locator("[data-figure=hubspot-message]")).to_have_text(message)
    await expect(page.locator("[data-figure=correlation-id]")).to_have_text(correlation)
    await expect(page.locator("#attempts")).to_contain_text(correlation)
    await expect(page.locator("#timeline")).to_contain_text("attempt 1: failed")
    await shot(page, "job-failed")
    await page.click("nav >> text=Jobs")
    await expect(page.locator("h1")).to_contain_text("Jobs")
    await page.goto(f"{console.base}/admin/jobs?state=done")
    await shot(page, "jobs")
    await page.click("nav >> text=Webhook events")
    await expect(page.locator("h1")).to_contain_text("Webhook events")


async def test_the_rules_page_fits_at_1280_px(page: Page, console: Console) -> None:
    await page.goto(f"{console.base}/admin/rules")
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px"
    right = await page.evaluate(
        "Math.max(...[...document.querySelectorAll('#rules-table th, #rules-table td')]"
        ".map(cell => cell.getBoundingClientRect().right))"
    )
    assert right <= 1280
    for header in ("Transform", "Value map", "On", "Delete"):
        await expect(page.locator("#rules-table th", has_text=header)).to_be_visible()
    await expect(page.locator("#rule-company_name")).to_contain_text("both ways")
    words = page.locator("#rule-status [data-figure=rule-words]")
    await expect(words).to_have_text("WARP → HubSpot, WARP wins")
    await shot(page, "rules")


async def test_read_hubspot_now_shows_what_field_memory_did_not_know(
    page: Page, console: Console
) -> None:
    company = await company_of(console, ACME["ban"])
    dropped = await console.api.put("/_hubspot/_sandbox/faults", json={"drop_webhooks": 1.0})
    assert dropped.status_code == 200, dropped.text
    edited = await console.api.patch(
        f"/_hubspot/_sandbox/companies/{company['id']}",
        json={"properties": {"name": "Acme Renamed Quietly"}},
    )
    assert edited.status_code == 200, edited.text
    await page.goto(f"{console.base}/admin/customers/{ACME['id']}")
    row = page.locator("#field-company_name")
    await expect(row).to_contain_text("in sync")  # all field memory knows
    await expect(row).not_to_contain_text("Acme Renamed Quietly")
    await expect(page.locator("#memory-note")).to_contain_text("hubsync's field memory")
    await page.click("#read-hubspot")
    await expect(page.locator("#live-read")).to_contain_text(
        "1 field(s) differ from what field memory knew"
    )
    await expect(row).to_contain_text("Acme Renamed Quietly")
    await expect(row).to_contain_text("memory did not know")
    await shot(page, "customer-read-hubspot")

    await console.api.put("/_hubspot/_sandbox/faults", json={"drop_webhooks": 0.0})
    await page.click("#sync-now")
    outcome = page.locator("#sync-outcome")
    await expect(outcome).to_be_visible()
    deadline = time.monotonic() + 30
    while "done" not in await outcome.inner_text() and time.monotonic() < deadline:
        await page.reload()
    await expect(outcome).to_contain_text(": done")
    await shot(page, "customer-sync-outcome")


async def test_reconciliation_shows_its_progress_while_it_runs(
    page: Page, console: Console
) -> None:
    # 1,000 companies hubsync does not manage (ten pages of HubSpot's list), each call slowed.
    await console.api.put("/_hubspot/_sandbox/faults", json={"drop_webhooks": 1.0})
    seeded = await console.api.post(
        "/_hubspot/_sandbox/companies",
        json={"companies": [{"properties": {"name": f"Other {n}"}} for n in range(1000)]},
    )
    assert seeded.status_code == 201, seeded.text
    await console.api.put(
        "/_hubspot/_sandbox/faults", json={"drop_webhooks": 1.0, "latency_ms": 400}
    )
    await page.goto(f"{console.base}/admin/reconciliation")
    await page.click("#run-dry_run")
    state = page.locator("[data-figure=run-state]")
    pages = page.locator("[data-figure=pages-hubspot]")
    seen_running = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now_state = await state.inner_text()
        read = (await pages.inner_text()).strip()
        if now_state == "running" and read.isdigit() and int(read) >= 1:
            seen_running = int(read)
            await shot(page, "reconciliation-running")
            break
        if now_state != "running":
            break
        await page.wait_for_timeout(300)
        await page.reload()
    assert seen_running, "no progress was shown while the run went on"
    await expect(page.locator("#run-progress")).to_contain_text("judged")
    # The page reloads itself (no script) until the run is done.
    await expect(state).to_have_text("done", timeout=90_000)
    assert int(await pages.inner_text()) >= max(seen_running, 10)
    await expect(page.locator("[data-figure=run-duration]")).to_have_count(1)
    await expect(page.locator("#drift-chart svg")).to_be_visible()
    await shot(page, "reconciliation")

    await console.api.put("/_hubspot/_sandbox/faults", json={"latency_ms": 0})
    await page.click("#run-fix")
    await expect(page.locator("h1")).to_have_text("Run a reconciliation that fixes?")
    await shot(page, "reconciliation-confirm-fix")


async def test_every_page_renders_at_1280_px_and_is_pictured(page: Page, console: Console) -> None:
    """The pages no other test pictures: each renders its heading, scrolls no sideways at
    1,280 px, and leaves a screenshot in docs/screenshots/ (linked from the README)."""
    pages = {
        "customers": ("/admin/customers", "Customers"),
        "conflicts": ("/admin/conflicts", "conflicts"),
        "events": ("/admin/events", "Webhook events"),
        "scope": ("/admin/scope", "scope"),
        "audit": ("/admin/audit", "Operator actions"),
        "customer": (f"/admin/customers/{ACME['id']}", ACME["company_name"]),
    }
    for name, (path, heading) in pages.items():
        await page.goto(f"{console.base}{path}")
        await expect(page.locator("h1")).to_contain_text(heading)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow} px"
        await shot(page, name)
    signed_out = await page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    login = await signed_out.new_page()
    await login.goto(f"{console.base}/admin/login")
    await expect(login.locator("input[type=password]")).to_be_visible()
    await shot(login, "login")
    await signed_out.close()
