"""The operator's console in a real browser (Debian's Chromium through Playwright) against a
real hubsync on PostgreSQL with the built-in sandbox: sign in, read the dashboard, edit a rule,
resolve a conflict, re-sync a failed job, pause and resume. Screenshots of every page go to
tests/screenshots/ (gitignored)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import func, select, text

from app.store.models import Conflict, SyncJob
from app.warp.demo import DEMO_CUSTOMERS
from tests.browser.console_server import (
    TABLE,
    Console,
    open_browser,
    screenshot,
    sign_in,
    start_console,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ACME = DEMO_CUSTOMERS[0]
GLOBEX = DEMO_CUSTOMERS[1]
PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def console(postgres_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    async for running in start_console(postgres_url, tmp_path):
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async for opened in open_browser():
        yield opened


@pytest.fixture
async def page(browser: Browser, console: Console) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    await sign_in(opened, console.base)
    await expect(opened.locator("h1")).to_have_text("Sync health")
    yield opened
    await context.close()


async def scalar(console: Console, query: Any) -> Any:
    async with console.engine.connect() as connection:
        return await connection.scalar(query)


async def job_state(console: Console, job_id: int) -> str:
    return str(await scalar(console, select(SyncJob.state).where(SyncJob.id == job_id)))


async def company_of(console: Console, ban: str) -> dict[str, Any]:
    [company] = [c for c in await console.sandbox_companies() if c["properties"]["warp_ban"] == ban]
    return company


async def warp_column(console: Console, customer_id: str, column: str) -> Any:
    return await scalar(
        console,
        text(f"SELECT {column} FROM {TABLE} WHERE id = CAST(:id AS uuid)").bindparams(
            id=customer_id
        ),
    )


async def set_warp(console: Console, customer_id: str, **values: Any) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    async with console.engine.begin() as connection:
        await connection.execute(
            text(
                f"UPDATE {TABLE} SET {assignments}, updated_at = now() WHERE id = CAST(:id AS uuid)"
            ),
            {"id": customer_id, **values},
        )


async def queue_customer(console: Console, customer_id: str) -> int:
    response = await console.api.post(f"/v1/sync/customers/{customer_id}/queue")
    assert response.status_code == 202, response.text
    return int(response.json()["job_id"])


async def test_sign_in_and_the_dashboard_equals_the_database(
    browser: Browser, console: Console
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{console.base}/admin/")
    assert "/admin/login" in page.url  # no page without a session
    await screenshot(page, "login")
    await sign_in(page, console.base, password="not the password")
    await expect(page.locator("p.error")).to_contain_text("not right")
    assert "/admin/login" in page.url
    await sign_in(page, console.base)
    await expect(page.locator("h1")).to_have_text("Sync health")

    async def figure(name: str) -> int:
        return int(await page.locator(f"[data-figure={name}]").inner_text())

    for state in ("pending", "running", "done", "failed"):
        in_database = await scalar(
            console, select(func.count()).select_from(SyncJob).where(SyncJob.state == state)
        )
        assert await figure(f"queue-{state}") == in_database, state
    assert await figure("queue-done") >= 5  # the first sync of the five demo customers
    assert await figure("customers-total") == 5
    assert await figure("customers-linked") == 5
    assert await figure("customers-not-linked") == 0
    open_conflicts = await scalar(
        console, select(func.count()).select_from(Conflict).where(Conflict.state == "open")
    )
    assert await figure("conflicts-open") == open_conflicts == 0
    assert await page.locator("svg.chart rect").count() >= 1  # the first sync, drawn
    await screenshot(page, "dashboard")

    # Every figure links to the rows behind it.
    await page.click("[data-figure=customers-total]")
    await expect(page.locator("table tbody tr")).to_have_count(5)
    await screenshot(page, "customers")
    await page.click(f"text={ACME['ban']}")
    await expect(page.locator("h1")).to_contain_text(ACME["company_name"])
    await expect(page.locator("table.fields")).to_contain_text("warp_credit_limit")
    await screenshot(page, "customer")
    for path, name in [
        ("/admin/conflicts", "conflicts"),
        ("/admin/failed", "failed"),
        ("/admin/rules", "rules"),
        ("/admin/reconciliation", "reconciliation"),
        ("/admin/audit", "audit"),
        ("/admin/jobs?state=done", "jobs"),
        ("/admin/events?status=processed", "events"),
    ]:
        await page.goto(console.base + path)
        await screenshot(page, name)
    await page.set_viewport_size(PHONE)
    await page.goto(f"{console.base}/admin/")
    await screenshot(page, "phone-dashboard")
    await page.goto(f"{console.base}/admin/customers/{ACME['id']}")
    await screenshot(page, "phone-customer")
    await context.close()


async def test_edit_a_rule_then_resolve_a_conflict_with_a_typed_value(
    page: Page, console: Console
) -> None:
    await page.goto(f"{console.base}/admin/rules")
    name = await page.locator("input[value=company_name]").get_attribute("name")
    index = re.match(r"rules-(\d+)-warp_field", name or "")
    assert index, name
    await page.select_option(f"#rules-{index.group(1)}-authority", "MANUAL")
    await page.click("#save-rules")
    await expect(page.locator(".banner.notice")).to_have_text("Rules saved.")
    await expect(page.locator("#rules-trail li").first).to_contain_text(
        "company_name: authority LATEST_WINS → MANUAL"
    )
    await expect(page.locator("#rules-trail li").first).to_contain_text("admin:browser-test")
    await screenshot(page, "rules-saved")

    # Both sides change the name: WARP in its table, a person in HubSpot (a signed webhook).
    company = await company_of(console, ACME["ban"])
    await set_warp(console, ACME["id"], company_name="Acme Billing Name")
    edited = await console.api.patch(
        f"/_hubspot/_sandbox/companies/{company['id']}",
        json={"properties": {"name": "Acme Sales Name"}},
    )
    assert edited.status_code == 200, edited.text
    conflict_id = await console.wait_for(
        lambda: scalar(
            console,
            select(Conflict.id).where(Conflict.state == "open", Conflict.field == "company_name"),
        )
    )
    await page.goto(f"{console.base}/admin/conflicts")
    card = page.locator(f"#conflict-{conflict_id}")
    await expect(card).to_contain_text("Acme Billing Name")
    await expect(card).to_contain_text("Acme Sales Name")
    await screenshot(page, "conflict-open")
    await card.locator("input[name=value]").fill("Acme Agreed Name Ltd")
    await card.locator("button[value=VALUE]").click()
    await expect(page.locator(".banner.notice")).to_contain_text(f"Conflict {conflict_id}")

    async def both_sides_agree() -> bool:
        hubspot = (await company_of(console, ACME["ban"]))["properties"]["name"]
        warp = await warp_column(console, ACME["id"], "company_name")
        return hubspot == warp == "Acme Agreed Name Ltd"

    await console.wait_for(both_sides_agree)
    await page.goto(f"{console.base}/admin/conflicts?state=resolved")
    await expect(page.locator(f"#conflict-{conflict_id}")).to_contain_text(
        "Resolved by admin:browser-test: VALUE = Acme Agreed Name Ltd"
    )
    await page.goto(f"{console.base}/admin/audit")
    await expect(page.locator("table")).to_contain_text("conflict.resolve")


async def test_resync_a_failed_job_after_clearing_the_sandboxs_fault(
    page: Page, console: Console
) -> None:
    faults = await console.api.put(
        "/_hubspot/_sandbox/faults", json={"error_rate": 1.0, "statuses": [400]}
    )
    assert faults.status_code == 200, faults.text
    await set_warp(console, GLOBEX["id"], status="SUSPENDED")
    job_id = await queue_customer(console, GLOBEX["id"])
    await console.wait_for(lambda: _is(job_state(console, job_id), "failed"))
    await console.api.put("/_hubspot/_sandbox/faults", json={"error_rate": 0.0})

    await page.goto(f"{console.base}/admin/failed")
    row = page.locator("tr", has=page.locator(f"#retry-{job_id}"))
    await expect(row).to_contain_text("validation")
    await screenshot(page, "failed-job")
    await page.click(f"#retry-{job_id}")
    await expect(page.locator(".banner.notice")).to_have_text("1 job(s) queued again.")

    async def synced() -> bool:
        company = await company_of(console, GLOBEX["ban"])
        return company["properties"]["warp_status"] == "SUSPENDED"

    await console.wait_for(synced)
    await console.wait_for(lambda: _is(job_state(console, job_id), "done"))
    failed_left = await scalar(
        console, select(func.count()).select_from(SyncJob).where(SyncJob.state == "failed")
    )
    assert failed_left == 0


async def test_pause_outbound_and_jobs_wait_until_resumed(page: Page, console: Console) -> None:
    await page.fill("input[aria-label='reason for pausing outbound']", "HubSpot import running")
    await page.click("#pause-outbound")
    banner = page.locator("#paused-outbound")
    await expect(banner).to_contain_text("WARP → HubSpot is paused")
    await expect(banner).to_contain_text("HubSpot import running")
    await page.goto(f"{console.base}/admin/customers")
    await expect(page.locator("#paused-outbound")).to_be_visible()  # on every page
    await screenshot(page, "paused")

    await set_warp(console, ACME["id"], status="CLOSED")
    job_id = await queue_customer(console, ACME["id"])
    await asyncio.sleep(3)  # several of the worker's polls
    assert await job_state(console, job_id) == "pending"
    assert (await company_of(console, ACME["ban"]))["properties"]["warp_status"] == "ACTIVE"
    await page.goto(f"{console.base}/admin/")
    assert int(await page.locator("[data-figure=queue-pending]").inner_text()) >= 1

    await page.click("#paused-outbound button")
    await expect(page.locator("#paused-outbound")).to_have_count(0)
    await expect(page.locator(".banner.notice")).to_contain_text("WARP → HubSpot is running")

    async def synced() -> bool:
        company = await company_of(console, ACME["ban"])
        return company["properties"]["warp_status"] == "CLOSED"

    await console.wait_for(synced)
    await console.wait_for(lambda: _is(job_state(console, job_id), "done"))


async def _is(value: Any, wanted: str) -> bool:
    return bool(await value == wanted)
