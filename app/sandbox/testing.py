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
# What the test client sends when the sandbox names no token (it then takes any).
TEST_TOKEN = "pat-sandbox-test"  # noqa: S105 - a placeholder the sandbox accepts, no secret


@dataclass
class RunningSandbox:
    app: Starlette
    sandbox: Sandbox
    # Talks to the app in-process, base URL SANDBOX_BASE_URL, with the sandbox's Bearer token.
    client: httpx.AsyncClient


@contextlib.asynccontextmanager
async def running_sandbox(config: SandboxConfig | None = None) -> AsyncIterator[RunningSandbox]:
    """A sandbox app with its lifespan entered and an httpx client bound to it."""
    app = create_sandbox_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        token = app.state.sandbox.config.access_token or TEST_TOKEN
        async with httpx.AsyncClient(
            transport=transport,
            base_url=SANDBOX_BASE_URL,
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield RunningSandbox(app, app.state.sandbox, client)
