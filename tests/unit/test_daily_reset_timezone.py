"""Issue 12, case 16: HubSpot's daily limit resets at midnight in the account's time zone,
not at UTC midnight — in the client (from the setting) and in the sandbox alike."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from app.hubspot.client import HubSpotClient
from app.hubspot.errors import HubSpotDailyLimitError, seconds_until_daily_reset
from app.sandbox.ratelimit import ApiLimiter
from app.settings import RateLimit, Settings, SettingsError
from tests.unit.test_hubspot_client_respx import BASE, COMPANIES, RecordingLimiter

NEW_YORK = "America/New_York"


def test_the_account_time_zone_is_a_validated_setting() -> None:
    settings = Settings.from_mapping({"HUBSPOT_ACCOUNT_TIMEZONE": NEW_YORK})
    assert settings.account_timezone == ZoneInfo(NEW_YORK)
    assert Settings.from_mapping({}).hubspot_account_timezone == "UTC"
    with pytest.raises(SettingsError, match="HUBSPOT_ACCOUNT_TIMEZONE"):
        Settings.from_mapping({"HUBSPOT_ACCOUNT_TIMEZONE": "Mars/Olympus_Mons"})


async def test_the_client_from_settings_waits_until_midnight_in_the_account_zone() -> None:
    settings = Settings.from_mapping(
        {"HUBSPOT_ACCOUNT_TIMEZONE": NEW_YORK, "HUBSPOT_ACCESS_TOKEN": "pat-test"}
    )
    client = HubSpotClient.from_settings(settings, limiter=RecordingLimiter(), base_url=BASE)
    async with client:
        with respx.mock(base_url=BASE) as hubspot:
            hubspot.get(f"{COMPANIES}/1").mock(
                return_value=httpx.Response(429, json={"policyName": "DAILY", "message": "d"})
            )
            with pytest.raises(HubSpotDailyLimitError) as caught:
                await client.get_company("1", ["name"])
    expected = seconds_until_daily_reset(datetime.now(UTC), ZoneInfo(NEW_YORK))
    assert caught.value.retry_after is not None
    assert abs(caught.value.retry_after - expected) < 60


def test_the_sandbox_resets_its_daily_quota_at_midnight_in_the_account_zone() -> None:
    now = [datetime(2026, 3, 10, 3, 0, tzinfo=UTC)]  # 23:00 on 9 March in New York
    limiter = ApiLimiter(
        RateLimit(1000, 1.0),
        RateLimit(1000, 1.0),
        daily_limit=1,
        account_timezone=ZoneInfo(NEW_YORK),
        wall_clock=lambda: now[0],
    )
    assert limiter.admit(search=False) is None
    assert limiter.admit(search=False) == "DAILY"
    now[0] = datetime(2026, 3, 10, 4, 30, tzinfo=UTC)  # past UTC midnight? no: 00:30 NY
    assert limiter.admit(search=False) is None  # a new day in New York
    assert limiter.admit(search=False) == "DAILY"
    now[0] = datetime(2026, 3, 11, 0, 30, tzinfo=UTC)  # UTC's new day, still 10 March in NY
    assert limiter.admit(search=False) == "DAILY"
    now[0] = datetime(2026, 3, 11, 4, 1, tzinfo=UTC)  # 00:01 on 11 March in New York
    assert limiter.admit(search=False) is None
