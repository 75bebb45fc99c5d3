"""A real hubsync (`hubsync serve`, the built-in HubSpot sandbox, the worker) on a fresh
PostgreSQL database with the five demo customers, for the console's browser tests; and
Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.db import create_engine
from app.warp.demo import ensure_demo_customers
from tests.acceptance.test_embedded_default import free_port
from tests.integration.admin_support import API_TOKEN, PASSWORD, SECRET_KEY
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "tests" / "screenshots"  # gitignored
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
TABLE = "accounts.customers"


@dataclass
class Console:
    base: str
    engine: AsyncEngine
    api: httpx.AsyncClient  # hubsync's API and the sandbox's control routes

    async def wait_for(self, check: Any, timeout: float = 30.0) -> Any:  # noqa: ASYNC109 -- a polling deadline
        return await eventually(check, timeout, interval=0.2)

    async def sandbox_companies(self) -> list[dict[str, Any]]:
        response = await self.api.get("/_hubspot/_sandbox/companies")
        return response.json()["results"]  # type: ignore[no-any-return]


def server_env(database_url: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HUBSYNC_", "HUBSPOT_", "WARP_"))
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "HUBSYNC_MODE": "demo",  # the built-in HubSpot sandbox
            "HUBSYNC_DATABASE_URL": database_url,
            "WARP_CUSTOMERS_TABLE": TABLE,
            "HUBSYNC_ADMIN_PASSWORD": PASSWORD,
            "HUBSYNC_SECRET_KEY": SECRET_KEY,
            "HUBSYNC_API_TOKENS": API_TOKEN,
            "HUBSYNC_LOG_FORMAT": "text",
            "HUBSYNC_RETRY_BASE_SECONDS": "0.2",
        }
    )
    return env


async def start_console(database_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    engine = create_engine(database_url)
    await ensure_demo_customers(engine, TABLE)
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    server = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=server_env(database_url),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    api = httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
    )
    console = Console(base, engine, api)
    try:

        async def ready() -> bool:
            try:
                return (await api.get("/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await console.wait_for(ready, timeout=60)
        # The sandbox starts empty; demo data is queued by itself only on the embedded SQLite
        # default, so the gateway's call does it here: the first sync brings the five over.
        async with engine.connect() as connection:
            ids = [
                str(row[0]) for row in await connection.exec_driver_sql(f"SELECT id FROM {TABLE}")
            ]
        queued = await api.post("/v1/sync/customers/queue", json={"customer_ids": ids})
        assert queued.status_code == 202, queued.text
        await console.wait_for(lambda: _count_companies(console, 5), timeout=60)
        yield console
    finally:
        try:
            await api.aclose()
            if server.returncode is None:
                server.terminate()
            try:
                await asyncio.wait_for(server.wait(), timeout=20)
            except TimeoutError:
                server.kill()
                await server.wait()
        finally:
            log.close()  # also when the server had already exited
            await engine.dispose()


async def _count_companies(console: Console, wanted: int) -> bool:
    return len(await console.sandbox_companies()) == wanted


async def open_browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium (.ci/run does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(page: Page, base: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base}/admin/login")
    await page.fill("input[name=name]", "browser-test")
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
