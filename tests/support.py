"""Helpers shared by tests: run an app with its lifespan and talk to it in-process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.api.middleware import with_lifespan_state
from app.settings import Settings


def api_only_settings(env: Mapping[str, str], tokens: str) -> Settings:
    """hubsync's HTTP API alone, behind `tokens`: no worker, no scheduler, no demo data, so
    what a test queues stays where the API put it."""
    return Settings.from_mapping(
        {
            **env,
            "HUBSYNC_API_TOKENS": tokens,
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_SCHEDULER": "false",
            "HUBSYNC_DEMO_DATA": "false",
        }
    )


@asynccontextmanager
async def running(
    app: Any, base_url: str = "http://hubsync.test"
) -> AsyncIterator[httpx.AsyncClient]:
    """Start `app`'s lifespan and yield a client that reaches it without a network."""
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(
            app=with_lifespan_state(app, state or {}), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


@asynccontextmanager
async def running_service(
    app: Any, base_url: str = "http://hubsync.test"
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """Like `running`, and also hand over the service's `AppContext`."""
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(
            app=with_lifespan_state(app, state or {}), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client, state["hubsync"]


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:  # noqa: ASYNC109 -- a polling deadline, not a cancellation scope
    """Await `check()` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")
