"""The service's way to HubSpot: the real API with a token, or the built-in sandbox without.

Either way the rest of hubsync gets one `HubSpotClient` (one shared httpx client, the
deployment-wide rate limiter) and hubsync's properties are bootstrapped at start. In sandbox
mode the emulator runs in-process: the client reaches it through an ASGI transport, and its
signed webhooks are delivered straight into hubsync's own webhook route.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.types import ASGIApp

from app.hubspot.client import HubSpotClient
from app.hubspot.ratelimit import (
    LocalRateLimiter,
    PostgresRateLimiter,
    create_rate_limiter,
)
from app.hubspot.ratelimit_share import ShareCappedLimiter
from app.hubspot.readiness import PropertyBootstrap
from app.settings import Secret, Settings
from app.store.models import SEARCH_BUCKET

log = logging.getLogger("hubsync.hubspot")

SANDBOX_APP_ID = "1"
# The embedded sandbox's portal id: what a demo database records as its portal.
SANDBOX_PORTAL_ID = 1
SANDBOX_BASE_URL = "http://hubspot-sandbox.internal"
WEBHOOK_PATH = "/v1/webhooks/hubspot"


@dataclass
class HubSpotConnection:
    client: HubSpotClient
    sandbox_app: Starlette | None  # set in sandbox mode
    properties: PropertyBootstrap  # ready once hubsync's properties exist in HubSpot
    # The same client, its calls held to HUBSYNC_RECONCILE_RATE_SHARE of the window.
    reconcile_client: HubSpotClient | None = None


@asynccontextmanager
async def open_hubspot(
    settings: Settings,
    engine: AsyncEngine,
    *,
    sandbox_app: Starlette | None,
    webhook_receiver: ASGIApp | None,
    before_bootstrap: Callable[[HubSpotClient], Awaitable[None]] | None = None,
) -> AsyncIterator[HubSpotConnection]:
    """Open the client (and run the sandbox's lifespan); bootstrap properties; close at exit.
    `before_bootstrap` runs first, before hubsync writes anything to HubSpot (the portal
    check)."""
    limiter = create_rate_limiter(engine, settings.hubspot_rate_limit)
    search_limiter = create_rate_limiter(
        engine, settings.hubspot_search_rate_limit, bucket=SEARCH_BUCKET
    )
    if sandbox_app is None:
        client = HubSpotClient.from_settings(
            settings, limiter=limiter, search_limiter=search_limiter
        )
        async with client:
            if before_bootstrap is not None:
                await before_bootstrap(client)
            async with _bootstrapped(client) as properties:
                capped = share_capped_client(client, limiter, search_limiter, settings)
                yield HubSpotConnection(client, None, properties, capped)
        return
    sandbox = sandbox_app.state.sandbox
    if webhook_receiver is not None:
        public = settings.public_url or "http://127.0.0.1:8000"
        await sandbox.set_webhook_target(
            public + WEBHOOK_PATH, httpx.ASGITransport(app=webhook_receiver)
        )
    async with sandbox_app.router.lifespan_context(sandbox_app):
        client = HubSpotClient(
            base_url=SANDBOX_BASE_URL,
            access_token=Secret(secrets.token_urlsafe(24)),
            api_version=settings.hubspot_api_version,
            limiter=limiter,
            search_limiter=search_limiter,
            transport=httpx.ASGITransport(app=sandbox_app),
        )
        async with client:
            if before_bootstrap is not None:
                await before_bootstrap(client)
            async with _bootstrapped(client) as properties:
                capped = share_capped_client(client, limiter, search_limiter, settings)
                yield HubSpotConnection(client, sandbox_app, properties, capped)


def share_capped_client(
    client: HubSpotClient,
    limiter: LocalRateLimiter | PostgresRateLimiter,
    search_limiter: LocalRateLimiter | PostgresRateLimiter,
    settings: Settings,
) -> HubSpotClient:
    """The client the reconciliation uses: its calls, searches too, within its share."""
    share = settings.reconcile_rate_share
    return client.with_limiter(
        ShareCappedLimiter(limiter, share, settings.hubspot_rate_limit.requests),
        ShareCappedLimiter(search_limiter, share, settings.hubspot_search_rate_limit.requests),
    )


@asynccontextmanager
async def _bootstrapped(client: HubSpotClient) -> AsyncIterator[PropertyBootstrap]:
    """Make sure hubsync's properties exist: once now, and until they do in the background.
    A failure is not fatal: the service takes jobs, which wait until the properties are ready
    (see app/hubspot/readiness.py)."""
    properties = PropertyBootstrap(client)
    await properties.first_attempt()
    try:
        yield properties
    finally:
        await properties.stop()
