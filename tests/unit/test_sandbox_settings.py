"""The built-in sandbox's limit is its own setting, not a copy of the client's."""

from __future__ import annotations

import httpx
import pytest

from app.sandbox.embedded import build_sandbox_app
from app.settings import RateLimit, Settings, SettingsError


def test_the_sandbox_keeps_hubspots_limit_whatever_the_client_is_told() -> None:
    settings = Settings.from_mapping({"HUBSYNC_MODE": "demo", "HUBSPOT_RATE_LIMIT": "1000/10s"})
    sandbox = build_sandbox_app(settings, None).state.sandbox
    assert settings.hubspot_rate_limit == RateLimit(1000, 10.0)
    assert sandbox.config.rate_limit == RateLimit(100, 10.0)  # so the client meets 429s
    assert sandbox.config.search_rate_limit == RateLimit(5, 1.0)
    assert settings.describe()["sandbox_rate_limit"] == "100/10s"


def test_the_sandbox_limit_is_set_by_its_own_variable() -> None:
    settings = Settings.from_mapping({"HUBSYNC_SANDBOX_RATE_LIMIT": "190/10s"})
    assert build_sandbox_app(settings, None).state.sandbox.config.rate_limit == RateLimit(190, 10)
    assert settings.hubspot_rate_limit == RateLimit(100, 10.0)
    with pytest.raises(SettingsError, match="HUBSYNC_SANDBOX_RATE_LIMIT"):
        Settings.from_mapping({"HUBSYNC_SANDBOX_RATE_LIMIT": "lots"})


async def test_the_embedded_sandbox_refuses_anonymous_requests() -> None:
    transport = httpx.ASGITransport(app=build_sandbox_app(Settings(), None))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        assert (await client.get("/crm/objects/2026-03/companies")).status_code == 401
        with_token = {"Authorization": "Bearer pat-any"}
        answer = await client.get("/crm/objects/2026-03/companies", headers=with_token)
        assert answer.status_code == 200
