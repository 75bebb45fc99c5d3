"""Running a sandbox in-process for tests and benchmarks, lifespan (and webhooks) included."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette

from app.sandbox.app import create_sandbox_app
from app.sandbox.config import SandboxConfig
from app.sandbox.sandbox import Sandbox

SANDBOX_BASE_URL = "https://api.hubapi.sandbox"


@dataclass
class RunningSandbox:
    app: Starlette
    sandbox: Sandbox
    client: httpx.AsyncClient  # talks to the app in-process, base URL SANDBOX_BASE_URL


@contextlib.asynccontextmanager
async def running_sandbox(config: SandboxConfig | None = None) -> AsyncIterator[RunningSandbox]:
    """A sandbox app with its lifespan entered and an httpx client bound to it."""
    app = create_sandbox_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_BASE_URL) as client:
            yield RunningSandbox(app, app.state.sandbox, client)
