"""The preflight's one HubSpot request (whose portal is this token's?) counts in the
deployment's rate-limit window like every other: it is made before the service starts, and
the first batches follow at once, so a request the shared log does not know about is one
request over HubSpot's limit (bench/README.md: 101 in a window, one 429, at start-up)."""

from __future__ import annotations

import httpx
import respx
from sqlalchemy import text

from app.preflight import preflight
from app.settings import Settings
from app.store.db import create_engine

BASE = "https://api.hubapi.test"


async def grants(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(
                text("SELECT count(*) FROM hubspot_rate_limit_grants WHERE bucket = 'hubspot'")
            )
    finally:
        await engine.dispose()
    return int(count or 0)


async def test_the_preflight_request_is_counted_in_the_shared_window(postgres_url: str) -> None:
    settings = Settings.from_mapping(
        {
            "HUBSYNC_DATABASE_URL": postgres_url,
            "HUBSPOT_ACCESS_TOKEN": "pat-test",
            "HUBSPOT_CLIENT_SECRET": "secret",
            "HUBSPOT_BASE_URL": BASE,
        }
    )
    before = await grants(postgres_url)
    with respx.mock(base_url=BASE) as hubspot:
        route = hubspot.get("/account-info/v3/details").mock(
            return_value=httpx.Response(200, json={"portalId": 4242, "timeZone": "UTC"})
        )
        await preflight(settings)
    assert route.call_count == 1
    assert await grants(postgres_url) == before + 1
