"""The configuration contract: defaults, every variable read, bad values refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.http_server import server_options
from app.settings import RateLimit, Secret, Settings, SettingsError


def test_defaults_are_the_embedded_default_but_the_sandbox_needs_demo_mode() -> None:
    settings = Settings.from_mapping({})
    assert settings.database_url.reveal() == "sqlite+aiosqlite:///./hubsync.db"
    assert settings.effective_warp_database_url == settings.database_url
    assert settings.effective_customers_table == "customers"
    assert settings.mode == "production"
    assert not settings.sandbox_mode
    assert settings.startup_problems() == [
        "HUBSPOT_ACCESS_TOKEN is not set: set it to sync with HubSpot, or set HUBSYNC_MODE=demo "
        "to run the built-in HubSpot sandbox (`make run` does)"
    ]
    demo = Settings.from_mapping({"HUBSYNC_MODE": "demo"})
    assert demo.sandbox_mode
    assert demo.startup_problems() == []
    assert settings.hubspot_base_url == "https://api.hubapi.com"
    assert settings.hubspot_rate_limit == RateLimit(100, 10.0)
    assert settings.api_tokens == ()
    assert not settings.admin_enabled


def test_every_contract_variable_is_read() -> None:
    settings = Settings.from_mapping(
        {
            "HUBSYNC_DATABASE_URL": "postgresql://sync:pw@db.internal:5432/hubsync",
            "WARP_DATABASE_URL": "postgresql://warp:pw2@warp.internal/warp",
            "WARP_CUSTOMERS_TABLE": "billing.customers",
            "HUBSPOT_ACCESS_TOKEN": "pat-na1-test",
            "HUBSPOT_BASE_URL": "https://api.hubapi.com/",
            "HUBSPOT_CLIENT_SECRET": "shh-secret",
            "HUBSPOT_APP_ID": "123456",
            "HUBSPOT_RATE_LIMIT": "190/10s",
            "HUBSYNC_PUBLIC_URL": "https://sync.example.com/",
            "HUBSYNC_API_TOKENS": "tok-one, tok-two",
            "HUBSYNC_ADMIN_PASSWORD": "admin-pw",
            "HUBSYNC_SECRET_KEY": "k" * 32,
        }
    )
    assert settings.database_url.reveal() == "postgresql+asyncpg://sync:pw@db.internal:5432/hubsync"
    assert settings.effective_warp_database_url.reveal().startswith("postgresql+asyncpg://warp:")
    assert settings.effective_customers_table == "billing.customers"
    assert not settings.sandbox_mode
    assert settings.hubspot_access_token == Secret("pat-na1-test")
    assert settings.hubspot_base_url == "https://api.hubapi.com"
    assert settings.hubspot_app_id == "123456"
    assert settings.hubspot_rate_limit == RateLimit(190, 10.0)
    assert settings.public_url == "https://sync.example.com"
    assert [t.reveal() for t in settings.api_tokens] == ["tok-one", "tok-two"]
    assert settings.admin_enabled


def test_the_scheduler_intervals_default_and_show_in_check_config() -> None:
    default = Settings.from_mapping({})
    assert (default.queue_tick_seconds, default.prune_interval_seconds) == (60.0, 600.0)
    short = Settings.from_mapping(
        {"HUBSYNC_QUEUE_TICK_INTERVAL": "2s", "HUBSYNC_PRUNE_INTERVAL": "1.5m"}
    )
    assert (short.queue_tick_seconds, short.prune_interval_seconds) == (2.0, 90.0)
    assert short.describe()["scheduler"] == "queue tick every 2 s, pruning every 90 s"
    off = Settings.from_mapping({"HUBSYNC_SCHEDULER": "false"})
    assert off.describe()["scheduler"] == "off"


def test_postgres_default_table_is_accounts_customers() -> None:
    settings = Settings.from_mapping({"HUBSYNC_DATABASE_URL": "postgresql://u@h/db"})
    assert settings.effective_customers_table == "accounts.customers"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("HUBSYNC_DATABASE_URL", "not a url", "HUBSYNC_DATABASE_URL: expected a database URL"),
        ("HUBSYNC_DATABASE_URL", "mysql://u@h/db", "expected a postgresql:// or sqlite:// URL"),
        ("HUBSYNC_DATABASE_URL", "postgresql://u@h", "names no database"),
        ("WARP_DATABASE_URL", "oracle://x/y", "WARP_DATABASE_URL: expected"),
        ("HUBSPOT_RATE_LIMIT", "100 per 10s", "HUBSPOT_RATE_LIMIT: expected like '100/10s'"),
        ("HUBSPOT_RATE_LIMIT", "0/10s", "HUBSPOT_RATE_LIMIT: expected a positive"),
        ("HUBSPOT_BASE_URL", "api.hubapi.com", "HUBSPOT_BASE_URL: expected an http(s) URL"),
        ("HUBSPOT_APP_ID", "my-app", "HUBSPOT_APP_ID: expected a numeric app id"),
        ("HUBSYNC_LOG_LEVEL", "LOUD", "HUBSYNC_LOG_LEVEL: expected one of"),
        ("WARP_CUSTOMERS_TABLE", "customers; drop", "WARP_CUSTOMERS_TABLE: expected a table name"),
        ("HUBSPOT_WEBHOOK_SIGNATURES", "v4", "HUBSPOT_WEBHOOK_SIGNATURES: expected"),
        ("HUBSYNC_WORKER", "maybe", "HUBSYNC_WORKER: expected true or false"),
        ("HUBSYNC_QUEUE_TICK_INTERVAL", "0.5s", "HUBSYNC_QUEUE_TICK_INTERVAL: expected between"),
        ("HUBSYNC_PRUNE_INTERVAL", "often", "HUBSYNC_PRUNE_INTERVAL: expected a duration"),
    ],
)
def test_bad_values_stop_with_one_line_naming_the_variable(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping({variable: value})
    message = str(caught.value)
    assert expected in message
    assert message.startswith(variable)
    assert "\n" not in message


def test_a_bad_database_url_never_echoes_its_password() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping({"HUBSYNC_DATABASE_URL": "mysql://user:hunter2@h/db"})
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "requests", "seconds"),
    [
        ("100/10s", 100, 10.0),
        ("190/10s", 190, 10.0),
        ("5/1s", 5, 1.0),
        ("10/500ms", 10, 0.5),
        ("1000/1m", 1000, 60.0),
    ],
)
def test_rate_limit_forms(text: str, requests: int, seconds: float) -> None:
    assert RateLimit.parse(text) == RateLimit(requests, seconds)


def test_secrets_are_masked_in_repr_and_describe() -> None:
    settings = Settings.from_mapping(
        {
            "HUBSYNC_DATABASE_URL": "postgresql://sync:dbpassword@db/hubsync",
            "HUBSPOT_ACCESS_TOKEN": "pat-secret-token",
            "HUBSPOT_CLIENT_SECRET": "client-secret-value",
            "HUBSYNC_API_TOKENS": "api-token-value",
            "HUBSYNC_ADMIN_PASSWORD": "admin-password-value",
            "HUBSYNC_SECRET_KEY": "secret-key-value",
        }
    )
    shown = repr(settings) + str(settings.describe())
    for secret in (
        "dbpassword",
        "pat-secret-token",
        "client-secret-value",
        "api-token-value",
        "admin-password-value",
        "secret-key-value",
    ):
        assert secret not in shown
    assert f"{settings.hubspot_access_token}" == "**********"


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# local overrides\nexport HUBSPOT_RATE_LIMIT=50/10s\nHUBSPOT_APP_ID='42'\n",
        encoding="utf-8",
    )
    settings = Settings.from_env({"HUBSPOT_APP_ID": "7"}, env_file=env_file)
    assert settings.hubspot_rate_limit == RateLimit(50, 10.0)
    assert settings.hubspot_app_id == "7"


def test_trusted_proxies_reach_uvicorn_and_check_config() -> None:
    default = Settings.from_mapping({})
    assert default.trusted_proxies == ("127.0.0.1",)
    assert server_options(default)["forwarded_allow_ips"] == "127.0.0.1"
    behind = Settings.from_mapping({"HUBSYNC_TRUSTED_PROXIES": " 10.0.0.0/8, fd00::/8,192.0.2.7 "})
    assert behind.trusted_proxies == ("10.0.0.0/8", "fd00::/8", "192.0.2.7")
    assert server_options(behind)["forwarded_allow_ips"] == "10.0.0.0/8,fd00::/8,192.0.2.7"
    assert behind.describe()["trusted_proxies"] == "10.0.0.0/8,fd00::/8,192.0.2.7"
    assert Settings.from_mapping({"HUBSYNC_TRUSTED_PROXIES": "*"}).trusted_proxies == ("*",)
    for bad in ("ingress-nginx", "10.0.0.0/33", "10.0.0.1,,*"):
        with pytest.raises(SettingsError) as caught:
            Settings.from_mapping({"HUBSYNC_TRUSTED_PROXIES": bad})
        assert str(caught.value).startswith("HUBSYNC_TRUSTED_PROXIES: ")
