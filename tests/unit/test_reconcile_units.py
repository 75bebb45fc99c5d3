"""The reconciliation's pure parts: its share of HubSpot's window, its settings, the fire
time replicas agree on, and the CSV rows of a report."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from apscheduler.triggers.cron import CronTrigger

from app.hubspot.client import HubSpotClient
from app.hubspot.connection import share_capped_client
from app.hubspot.ratelimit import LocalRateLimiter
from app.hubspot.ratelimit_share import ShareCappedLimiter
from app.settings import RateLimit, Settings, SettingsError
from app.store.models import SEARCH_BUCKET
from app.sync.reconcile.report import CSV_COLUMNS, csv_rows, spreadsheet_safe
from app.sync.reconcile.schedule import fire_key


async def test_a_capped_share_stops_at_its_ceiling_and_leaves_the_rest_to_live_work() -> None:
    shared = LocalRateLimiter(RateLimit(10, 0.5), margin_seconds=0)
    background = ShareCappedLimiter(shared, 0.5, 10)
    for _ in range(5):
        await background.acquire()
    blocked = asyncio.create_task(background.acquire())
    await asyncio.sleep(0.05)
    assert not blocked.done()  # the share is full
    started = time.monotonic()
    for _ in range(5):  # live work still gets the other half at once
        await shared.acquire()
    assert time.monotonic() - started < 0.1
    assert not blocked.done()
    await asyncio.wait_for(blocked, timeout=2)  # once the window moves on


def test_the_share_is_at_least_one_request() -> None:
    assert ShareCappedLimiter(LocalRateLimiter(RateLimit(3, 1)), 0.1, 3).ceiling == 1
    with pytest.raises(ValueError, match="share"):
        ShareCappedLimiter(LocalRateLimiter(RateLimit(3, 1)), 0, 3)


def test_reconciliation_settings() -> None:
    default = Settings.from_mapping({})
    assert default.reconcile_cron == "0 3 * * *"
    assert default.catchup_interval_seconds == 300
    assert default.reconcile_rate_share == 0.5
    off = Settings.from_mapping({"HUBSYNC_RECONCILE_CRON": "", "HUBSYNC_CATCHUP_INTERVAL": "0"})
    assert off.reconcile_cron is None
    assert off.catchup_interval_seconds is None
    custom = Settings.from_mapping(
        {"HUBSYNC_RECONCILE_RATE_SHARE": "25%", "HUBSYNC_CATCHUP_INTERVAL": "2m"}
    )
    assert (custom.reconcile_rate_share, custom.catchup_interval_seconds) == (0.25, 120)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HUBSYNC_RECONCILE_CRON", "every day"),
        ("HUBSYNC_RECONCILE_RATE_SHARE", "150%"),
        ("HUBSYNC_RECONCILE_RATE_SHARE", "half"),
        ("HUBSYNC_RECONCILE_MODE", "delete"),
        ("HUBSYNC_CATCHUP_INTERVAL", "soon"),
    ],
)
def test_bad_reconciliation_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_mapping({name: value})


def test_every_replica_names_the_same_fire_time() -> None:
    daily = CronTrigger.from_crontab("0 3 * * *", timezone=UTC)
    on_time = datetime(2026, 11, 29, 3, 0, 0, 5_000, tzinfo=UTC)
    late = datetime(2026, 11, 29, 3, 14, 59, tzinfo=UTC)
    assert fire_key(daily, on_time) == fire_key(daily, late) == "schedule:2026-11-29T03:00:00+00:00"
    next_day = datetime(2026, 11, 30, 3, 0, 1, tzinfo=UTC)
    assert fire_key(daily, next_day) != fire_key(daily, on_time)


def test_csv_has_a_row_per_drifting_field() -> None:
    item = {
        "category": "drift",
        "warp_customer_id": "c1",
        "hubspot_company_id": "1001",
        "warp_ban": "ZT-1",
        "fields": [
            {
                "field": "status",
                "warp": "ACTIVE",
                "hubspot": "SUSPENDED",
                "decision": "WRITE_HUBSPOT",
            },
            {"field": "credit_limit", "warp": "10", "hubspot": None, "decision": "WRITE_HUBSPOT"},
        ],
        "action": "sync",
        "job_id": 7,
        "detail": "differs",
    }
    orphan = {**item, "category": "orphan", "fields": [], "warp_customer_id": None, "job_id": None}
    rows = list(csv_rows(3, [item, orphan]))
    assert len(rows) == 3
    record = dict(zip(CSV_COLUMNS, rows[0], strict=True))
    assert (record["field"], record["warp_value"], record["hubspot_value"]) == (
        "status",
        "ACTIVE",
        "SUSPENDED",
    )
    assert rows[1][CSV_COLUMNS.index("hubspot_value")] == ""
    assert rows[2][CSV_COLUMNS.index("category")] == "orphan"


def test_the_reconciliation_client_searches_within_its_share_too() -> None:
    settings = Settings.from_env(
        {"HUBSYNC_RECONCILE_RATE_SHARE": "50%", "HUBSYNC_DATABASE_URL": "sqlite+aiosqlite://"},
        env_file=None,
    )
    limiter = LocalRateLimiter(settings.hubspot_rate_limit)
    search = LocalRateLimiter(settings.hubspot_search_rate_limit, bucket=SEARCH_BUCKET)
    client = HubSpotClient(
        base_url="https://api.hubapi.com", access_token=None, limiter=limiter, search_limiter=search
    )
    capped = share_capped_client(client, limiter, search, settings)
    assert isinstance(capped.limiter, ShareCappedLimiter)
    assert isinstance(capped.search_limiter, ShareCappedLimiter)
    assert (capped.limiter.ceiling, capped.search_limiter.ceiling) == (50, 2)  # of 100/10 s, 5/s
    assert client.search_limiter is search  # live traffic keeps the whole budget


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+1-2", "'+1-2"),
        ("-1-2", "'-1-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-", "'-"),
        ("-12.5", "-12.5"),
        ("+3", "+3"),
        ("-.5", "-.5"),
        ("-1e3", "-1e3"),
        ("Acme = best", "Acme = best"),
        ("", ""),
        (42, 42),
    ],
)
def test_spreadsheet_cells_never_start_a_formula(cell: object, safe: object) -> None:
    assert spreadsheet_safe(cell) == safe
