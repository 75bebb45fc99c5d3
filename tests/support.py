"""Helpers shared by tests: run an app with its lifespan and talk to it in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.api.middleware import with_lifespan_state


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
