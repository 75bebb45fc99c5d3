"""Every setting of hubsync, read once from the environment (and a `.env` file).

The configuration contract of MISSION.md lives here and nowhere else. A bad value stops
start-up with a `SettingsError` whose message is one line naming the variable and what is
expected; secrets are wrapped in `Secret` so no repr, log line or error shows them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from app.errors import HubsyncError

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./hubsync.db"
DEFAULT_HUBSPOT_BASE_URL = "https://api.hubapi.com"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")
DEFAULT_RECONCILE_CRON = "0 3 * * *"
RECONCILE_MODES = ("fix", "dry_run")
API_VERSIONS = ("2026-03", "v3")
MODES = ("production", "demo")
NO_HUBSPOT_CREDENTIALS = (
    "HUBSPOT_ACCESS_TOKEN is not set: set it to sync with HubSpot, or set HUBSYNC_MODE=demo "
    "to run the built-in HubSpot sandbox (`make run` does)"
)
_RATE_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*$")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


# Every environment variable hubsync reads. The README's configuration table, the chart's
# values.yaml and values.schema.json, and `hubsync check-config` each name every one
# (tests/unit/test_settings_in_one_place.py): adding a setting starts here.
ENVIRONMENT: tuple[str, ...] = (
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_ACCOUNT_TIMEZONE",
    "HUBSPOT_API_VERSION",
    "HUBSPOT_APP_ID",
    "HUBSPOT_BASE_URL",
    "HUBSPOT_CLIENT_SECRET",
    "HUBSPOT_PORTAL_ID",
    "HUBSPOT_RATE_LIMIT",
    "HUBSPOT_SEARCH_RATE_LIMIT",
    "HUBSPOT_WEBHOOK_SIGNATURES",
    "HUBSYNC_ADMIN_PASSWORD",
    "HUBSYNC_API_TOKENS",
    "HUBSYNC_BODY_TIMEOUT",
    "HUBSYNC_CATCHUP_INTERVAL",
    "HUBSYNC_CATCHUP_OVERLAP",
    "HUBSYNC_DATABASE_URL",
    "HUBSYNC_DEMO_DATA",
    "HUBSYNC_HEADER_TIMEOUT",
    "HUBSYNC_HISTORY_RETENTION",
    "HUBSYNC_LEASE_SECONDS",
    "HUBSYNC_LOG_FORMAT",
    "HUBSYNC_LOG_LEVEL",
    "HUBSYNC_MAX_CONNECTIONS",
    "HUBSYNC_MAX_UNAUTHENTICATED",
    "HUBSYNC_METRICS_PORT",
    "HUBSYNC_MIGRATIONS_DIR",
    "HUBSYNC_MODE",
    "HUBSYNC_PRUNE_INTERVAL",
    "HUBSYNC_PUBLIC_URL",
    "HUBSYNC_QUEUE_AGEING",
    "HUBSYNC_QUEUE_RETENTION",
    "HUBSYNC_QUEUE_TICK_INTERVAL",
    "HUBSYNC_RECONCILE_CRON",
    "HUBSYNC_RECONCILE_LEASE",
    "HUBSYNC_RECONCILE_MODE",
    "HUBSYNC_RECONCILE_RATE_SHARE",
    "HUBSYNC_RECONCILE_RETENTION",
    "HUBSYNC_REPORT_EMAIL_FROM",
    "HUBSYNC_REPORT_EMAIL_TO",
    "HUBSYNC_REPORT_SMTP_STARTTLS",
    "HUBSYNC_REPORT_SMTP_URL",
    "HUBSYNC_REPORT_WEBHOOK_URL",
    "HUBSYNC_RETRY_BASE_SECONDS",
    "HUBSYNC_RETRY_MAX_AGE",
    "HUBSYNC_RETRY_MAX_DELAY",
    "HUBSYNC_SANDBOX_RATE_LIMIT",
    "HUBSYNC_SCHEDULER",
    "HUBSYNC_SECRET_KEY",
    "HUBSYNC_SYNC_NOW_TIMEOUT",
    "HUBSYNC_TRUSTED_PROXIES",
    "HUBSYNC_WORKER",
    "HUBSYNC_WORKER_BATCH_SIZE",
    "HUBSYNC_WORKER_CONCURRENCY",
    "HUBSYNC_WORKER_POLL_INTERVAL",
    "PROMETHEUS_MULTIPROC_DIR",
    "WARP_CUSTOMERS_TABLE",
    "WARP_DATABASE_URL",
)
# Never printed: check-config says only whether they are set.
SECRET_ENVIRONMENT = frozenset(
    {
        "HUBSYNC_DATABASE_URL",
        "WARP_DATABASE_URL",
        "HUBSPOT_ACCESS_TOKEN",
        "HUBSPOT_CLIENT_SECRET",
        "HUBSYNC_API_TOKENS",
        "HUBSYNC_ADMIN_PASSWORD",
        "HUBSYNC_SECRET_KEY",
        # A Slack-style webhook URL is its own credential; the SMTP URL carries a password.
        "HUBSYNC_REPORT_WEBHOOK_URL",
        "HUBSYNC_REPORT_SMTP_URL",
    }
)


class SettingsError(HubsyncError, ValueError):
    """A configuration value is missing or malformed; the message is one line for an operator.
    `problems` holds each bad value's line when several were found (`check-config` prints
    them all, so an operator fixes a configuration in one round)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


# Each setting's error starts with its variable's name (`HUBSYNC_LOG_LEVEL: expected ...`).
_NAMED_PROBLEM = re.compile(r"^([A-Z][A-Z0-9_]*): ")


class Secret:
    """A string that never shows itself in repr, str or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class RateLimit:
    """`requests` calls at most in any window of `window_seconds`."""

    requests: int
    window_seconds: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        match = _RATE_LIMIT.match(text)
        if not match:
            raise ValueError(
                f"expected like '100/10s' (requests/window in ms, s or m), got {text!r}"
            )
        requests, amount, unit = int(match[1]), float(match[2]), match[3]
        seconds = amount / 1000 if unit == "ms" else amount * 60 if unit == "m" else amount
        if requests < 1 or seconds <= 0:
            raise ValueError(f"expected a positive count and window, got {text!r}")
        return cls(requests=requests, window_seconds=seconds)

    def __str__(self) -> str:
        return f"{self.requests}/{self.window_seconds:g}s"


def mask_url(url: str | URL) -> str:
    """The URL with its whole password replaced, safe for logs and errors.

    Done on the text rather than through a URL parser: a password holding an unescaped `@`
    (`app:P@ssw0rd@db`) makes parsers split it at the first `@` and show its tail. The
    credentials end at the last `@` of the URL.
    """
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
    scheme, sep, rest = text.partition("://")
    if not sep or "@" not in rest:
        return text
    userinfo, _, host = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


@dataclass(frozen=True)
class Settings:
    database_url: Secret = field(default_factory=lambda: Secret(DEFAULT_DATABASE_URL))
    warp_database_url: Secret | None = None
    warp_customers_table: str | None = None
    hubspot_access_token: Secret | None = None
    hubspot_base_url: str = DEFAULT_HUBSPOT_BASE_URL
    hubspot_client_secret: Secret | None = None
    hubspot_app_id: str | None = None
    # The HubSpot account (portal) id: the console links a company to its page in HubSpot.
    hubspot_portal_id: str | None = None
    hubspot_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(100, 10.0))
    hubspot_search_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(5, 1.0))
    # Which of HubSpot's CRM API versions the client calls: the dated "2026-03" or legacy "v3".
    hubspot_api_version: str = "2026-03"
    # The built-in sandbox's own limit (sandbox mode only), independent of the client's.
    sandbox_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(100, 10.0))
    hubspot_webhook_signature_versions: tuple[str, ...] = ("v3",)
    public_url: str | None = None
    api_tokens: tuple[Secret, ...] = ()
    admin_password: Secret | None = None
    secret_key: Secret | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    worker_enabled: bool = True
    scheduler_enabled: bool = True
    demo_data: bool = True
    # The sync queue and its worker (app/sync/worker/worker.py, app/store/queue/repository.py).
    worker_batch_size: int = 100
    # The most batches in flight per process; None = 16 on PostgreSQL, of which the worker
    # runs as many as fill HubSpot's limit (app/sync/worker/lanes.py), 1 on SQLite (one writer at a
    # time anyway).
    worker_concurrency: int | None = None
    worker_poll_seconds: float = 1.0
    lease_seconds: float = 60.0
    retry_base_seconds: float = 1.0
    retry_max_delay_seconds: float = 900.0
    retry_max_age_seconds: float = 86400.0
    queue_retention_seconds: float = 7 * 86400.0
    # The scheduler's housekeeping: the queue's backstop tick (wake, rescue, prune done jobs)
    # and the pruning of history and old reconciliation reports.
    queue_tick_seconds: float = 60.0
    prune_interval_seconds: float = 600.0
    # Reconciliation (app/sync/reconcile/): the daily full run and the catch-up.
    reconcile_cron: str | None = DEFAULT_RECONCILE_CRON  # UTC; None = no scheduled run
    reconcile_mode: str = "fix"  # what the scheduled run does
    reconcile_rate_share: float = 0.5  # of HubSpot's window a run may fill
    reconcile_lease_seconds: float = 60.0
    reconcile_retention_seconds: float = 90 * 86400.0
    catchup_interval_seconds: float | None = 300.0  # None = no catch-up
    catchup_overlap_seconds: float = 60.0
    # Stored webhook events and the sync log are pruned after this long (failed events are
    # kept until handled).
    history_retention_seconds: float = 30 * 86400.0
    # Against hostile clients (app/api/limits.py, app/http_server.py).
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    max_unauthenticated_requests: int = 1024
    max_connections: int = 1000
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (uvicorn's
    # forwarded_allow_ips): addresses or networks, or "*". The console's login limit counts
    # the client address they forward.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    # "demo" runs the built-in HubSpot sandbox; "production" needs HUBSPOT_ACCESS_TOKEN.
    mode: str = "production"
    # A pending job gains one priority level per this many seconds waited (1 = most urgent),
    # so a steady stream of urgent work cannot starve a priority-10 backfill.
    queue_ageing_seconds: float = 60.0
    # The immediate-sync route gives up waiting after this long (the job stays queued).
    sync_now_timeout_seconds: float = 25.0
    # HubSpot resets the daily request limit at midnight in the account's time zone.
    hubspot_account_timezone: str = "UTC"
    # /metrics on a port of its own instead of the service's (None: the service's port).
    metrics_port: int | None = None
    # Where the reports go (app/sync/reports/): after each scheduled reconciliation run and
    # when a scheduled job fails or runs late. None = that destination is off.
    report_webhook_url: Secret | None = None
    report_smtp: SmtpServer | None = None
    report_email_from: str | None = None
    report_email_to: tuple[str, ...] = ()

    # -- derived views -------------------------------------------------------------------

    @property
    def sandbox_mode(self) -> bool:
        """HUBSYNC_MODE=demo: hubsync runs its built-in HubSpot sandbox. Never inferred from
        a missing token: a production deployment restarted without its token must stop, not
        fall into the sandbox."""
        return self.mode == "demo"

    def startup_problems(self) -> list[str]:
        """What stops `hubsync serve` from starting, one line each (empty: it may start)."""
        problems = []
        if not self.sandbox_mode and self.hubspot_access_token is None:
            problems.append(NO_HUBSPOT_CREDENTIALS)
        urls = [("HUBSYNC_DATABASE_URL", self.database_url)]
        if self.warp_database_url not in (None, self.database_url):
            urls.append(("WARP_DATABASE_URL", self.effective_warp_database_url))
        for name, url in urls:
            problem = sqlite_path_problem(url.reveal())
            if problem is not None:
                problems.append(f"{name}: {problem}")
        return problems

    def startup_warnings(self) -> list[str]:
        """What lets hubsync start but not do all its work, one line each."""
        warnings = []
        if self.hubspot_access_token is not None and self.hubspot_client_secret is None:
            warnings.append(
                "HUBSPOT_CLIENT_SECRET is not set: HubSpot's webhooks cannot be verified and "
                "are refused (503) until it is"
            )
        return warnings

    @property
    def effective_warp_database_url(self) -> Secret:
        return self.warp_database_url or self.database_url

    @property
    def effective_customers_table(self) -> str:
        if self.warp_customers_table:
            return self.warp_customers_table
        is_sqlite = make_url(self.effective_warp_database_url.reveal()).get_backend_name()
        return "customers" if is_sqlite == "sqlite" else "accounts.customers"

    @property
    def effective_worker_concurrency(self) -> int:
        if self.worker_concurrency is not None:
            return self.worker_concurrency
        return 1 if make_url(self.database_url.reveal()).get_backend_name() == "sqlite" else 16

    def describe_reports(self) -> str:
        """Where reports go, log-safe: the webhook's host only (its path is the secret)."""
        places = []
        if self.report_webhook_url is not None:
            places.append(f"webhook at {urlsplit(self.report_webhook_url.reveal()).hostname}")
        if self.report_smtp is not None:
            places.append(
                f"e-mail via {self.report_smtp.describe()} to {len(self.report_email_to)} "
                "recipient(s)"
            )
        return ", ".join(places) or "off"

    @property
    def reports_enabled(self) -> bool:
        return self.report_webhook_url is not None or self.report_smtp is not None

    @property
    def account_timezone(self) -> tzinfo:
        return ZoneInfo(self.hubspot_account_timezone)

    @property
    def admin_enabled(self) -> bool:
        return self.admin_password is not None and self.secret_key is not None

    def describe(self) -> dict[str, Any]:
        """A log-safe summary of the configuration."""
        return {
            "database": mask_url(self.database_url.reveal()),
            "warp_database": mask_url(self.effective_warp_database_url.reveal()),
            "warp_customers_table": self.effective_customers_table,
            "mode": self.mode,
            "hubspot": "sandbox" if self.sandbox_mode else mask_url(self.hubspot_base_url),
            "hubspot_rate_limit": str(self.hubspot_rate_limit),
            "hubspot_api_version": self.hubspot_api_version,
            **({"sandbox_rate_limit": str(self.sandbox_rate_limit)} if self.sandbox_mode else {}),
            "api_tokens": len(self.api_tokens),
            "admin": "enabled" if self.admin_enabled else "disabled",
            "scheduler": (
                f"queue tick every {self.queue_tick_seconds:g} s, pruning every "
                f"{self.prune_interval_seconds:g} s"
                if self.scheduler_enabled
                else "off"
            ),
            "trusted_proxies": ",".join(self.trusted_proxies),
            "reports": self.describe_reports(),
        }

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
    ) -> Settings:
        """Read the contract from `environ` (default: os.environ) over an optional `.env` file."""
        values: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            values.update(read_env_file(Path(env_file)))
        values.update(os.environ if environ is None else environ)
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """The settings, or a SettingsError listing every bad value: each one found is set
        aside (its default stands in) and the rest read again, so one typo does not hide
        the next."""
        remaining = dict(env)
        problems: list[str] = []
        while True:
            try:
                settings = cls._read(remaining)
            except SettingsError as exc:
                problems.append(str(exc))
                named = _NAMED_PROBLEM.match(str(exc))
                if named is None or named[1] not in remaining:
                    break  # nothing to set aside: this one stops the reading
                del remaining[named[1]]
                continue
            if not problems:
                return settings
            break
        raise SettingsError("; ".join(problems), problems)

    @classmethod
    def _read(cls, env: Mapping[str, str]) -> Settings:
        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() != "" else None

        database_url = _database_url("HUBSYNC_DATABASE_URL", get("HUBSYNC_DATABASE_URL"))
        warp_url = get("WARP_DATABASE_URL")
        table = get("WARP_CUSTOMERS_TABLE")
        if table is not None and not _TABLE_NAME.match(table):
            raise SettingsError(
                f"WARP_CUSTOMERS_TABLE: expected a table name like 'accounts.customers', "
                f"got {table!r}"
            )
        mode = _choice("HUBSYNC_MODE", (get("HUBSYNC_MODE") or "production").lower(), MODES)
        if mode == "demo" and get("HUBSPOT_ACCESS_TOKEN") is not None:
            raise SettingsError(
                "HUBSYNC_MODE: demo runs the built-in HubSpot sandbox, but HUBSPOT_ACCESS_TOKEN "
                "is set; unset one of them"
            )
        base_url = get("HUBSPOT_BASE_URL") or DEFAULT_HUBSPOT_BASE_URL
        _http_url("HUBSPOT_BASE_URL", base_url)
        public_url = get("HUBSYNC_PUBLIC_URL")
        if public_url is not None:
            _http_url("HUBSYNC_PUBLIC_URL", public_url)
        app_id = get("HUBSPOT_APP_ID")
        if app_id is not None and not app_id.isdigit():
            raise SettingsError(f"HUBSPOT_APP_ID: expected a numeric app id, got {app_id!r}")
        portal_id = get("HUBSPOT_PORTAL_ID")
        if portal_id is not None and not portal_id.isdigit():
            raise SettingsError(
                f"HUBSPOT_PORTAL_ID: expected a numeric account id, got {portal_id!r}"
            )
        versions = tuple(
            v.strip().lower()
            for v in (get("HUBSPOT_WEBHOOK_SIGNATURES") or "v3").split(",")
            if v.strip()
        )
        unknown = [v for v in versions if v not in ("v1", "v2", "v3")]
        if unknown or not versions:
            raise SettingsError(
                f"HUBSPOT_WEBHOOK_SIGNATURES: expected a comma list of v1, v2, v3, got {unknown}"
            )
        tokens = tuple(
            Secret(t.strip()) for t in (get("HUBSYNC_API_TOKENS") or "").split(",") if t.strip()
        )
        log_level = (get("HUBSYNC_LOG_LEVEL") or "INFO").upper()
        log_format = (get("HUBSYNC_LOG_FORMAT") or "json").lower()
        return cls(
            mode=mode,
            database_url=Secret(database_url),
            warp_database_url=(
                Secret(_database_url("WARP_DATABASE_URL", warp_url)) if warp_url else None
            ),
            warp_customers_table=table,
            hubspot_access_token=_secret(get("HUBSPOT_ACCESS_TOKEN")),
            hubspot_base_url=base_url.rstrip("/"),
            hubspot_client_secret=_secret(get("HUBSPOT_CLIENT_SECRET")),
            hubspot_app_id=app_id,
            hubspot_portal_id=portal_id,
            hubspot_rate_limit=_rate_limit(
                "HUBSPOT_RATE_LIMIT", get("HUBSPOT_RATE_LIMIT"), "100/10s"
            ),
            hubspot_search_rate_limit=_rate_limit(
                "HUBSPOT_SEARCH_RATE_LIMIT", get("HUBSPOT_SEARCH_RATE_LIMIT"), "5/1s"
            ),
            hubspot_api_version=_choice(
                "HUBSPOT_API_VERSION", get("HUBSPOT_API_VERSION") or "2026-03", API_VERSIONS
            ),
            sandbox_rate_limit=_rate_limit(
                "HUBSYNC_SANDBOX_RATE_LIMIT", get("HUBSYNC_SANDBOX_RATE_LIMIT"), "100/10s"
            ),
            hubspot_webhook_signature_versions=versions,
            public_url=public_url.rstrip("/") if public_url else None,
            api_tokens=tokens,
            admin_password=_secret(get("HUBSYNC_ADMIN_PASSWORD")),
            secret_key=_secret(get("HUBSYNC_SECRET_KEY")),
            log_level=_choice("HUBSYNC_LOG_LEVEL", log_level, LOG_LEVELS),
            log_format=_choice("HUBSYNC_LOG_FORMAT", log_format, LOG_FORMATS),
            worker_enabled=_boolean("HUBSYNC_WORKER", get("HUBSYNC_WORKER"), default=True),
            scheduler_enabled=_boolean("HUBSYNC_SCHEDULER", get("HUBSYNC_SCHEDULER"), default=True),
            demo_data=_boolean("HUBSYNC_DEMO_DATA", get("HUBSYNC_DEMO_DATA"), default=True),
            worker_batch_size=_number(
                "HUBSYNC_WORKER_BATCH_SIZE", get("HUBSYNC_WORKER_BATCH_SIZE"), 100, 1, 1000
            ),
            worker_concurrency=(
                _number("HUBSYNC_WORKER_CONCURRENCY", get("HUBSYNC_WORKER_CONCURRENCY"), 1, 1, 64)
                if get("HUBSYNC_WORKER_CONCURRENCY") is not None
                else None
            ),
            worker_poll_seconds=_duration(
                "HUBSYNC_WORKER_POLL_INTERVAL", get("HUBSYNC_WORKER_POLL_INTERVAL"), 1.0, 0.05, 60
            ),
            lease_seconds=_duration(
                "HUBSYNC_LEASE_SECONDS", get("HUBSYNC_LEASE_SECONDS"), 60.0, 1, 3600
            ),
            retry_base_seconds=_duration(
                "HUBSYNC_RETRY_BASE_SECONDS", get("HUBSYNC_RETRY_BASE_SECONDS"), 1.0, 0.01, 3600
            ),
            retry_max_delay_seconds=_duration(
                "HUBSYNC_RETRY_MAX_DELAY", get("HUBSYNC_RETRY_MAX_DELAY"), 900.0, 1, 86400
            ),
            retry_max_age_seconds=_duration(
                "HUBSYNC_RETRY_MAX_AGE", get("HUBSYNC_RETRY_MAX_AGE"), 86400.0, 1, 30 * 86400
            ),
            queue_retention_seconds=_duration(
                "HUBSYNC_QUEUE_RETENTION",
                get("HUBSYNC_QUEUE_RETENTION"),
                7 * 86400.0,
                60,
                365 * 86400,
            ),
            queue_tick_seconds=_duration(
                "HUBSYNC_QUEUE_TICK_INTERVAL", get("HUBSYNC_QUEUE_TICK_INTERVAL"), 60.0, 1, 3600
            ),
            prune_interval_seconds=_duration(
                "HUBSYNC_PRUNE_INTERVAL", get("HUBSYNC_PRUNE_INTERVAL"), 600.0, 1, 86400
            ),
            **_reconciliation(env, get),
            header_timeout_seconds=_duration(
                "HUBSYNC_HEADER_TIMEOUT", get("HUBSYNC_HEADER_TIMEOUT"), 10.0, 0.1, 300
            ),
            body_timeout_seconds=_duration(
                "HUBSYNC_BODY_TIMEOUT", get("HUBSYNC_BODY_TIMEOUT"), 30.0, 0.1, 3600
            ),
            max_unauthenticated_requests=_number(
                "HUBSYNC_MAX_UNAUTHENTICATED", get("HUBSYNC_MAX_UNAUTHENTICATED"), 1024, 1, 100_000
            ),
            max_connections=_number(
                "HUBSYNC_MAX_CONNECTIONS", get("HUBSYNC_MAX_CONNECTIONS"), 1000, 10, 100_000
            ),
            trusted_proxies=_trusted_proxies(get("HUBSYNC_TRUSTED_PROXIES")),
            history_retention_seconds=_duration(
                "HUBSYNC_HISTORY_RETENTION",
                get("HUBSYNC_HISTORY_RETENTION"),
                30 * 86400.0,
                60,
                10 * 365 * 86400,
            ),
            queue_ageing_seconds=_duration(
                "HUBSYNC_QUEUE_AGEING", get("HUBSYNC_QUEUE_AGEING"), 60.0, 1, 86400
            ),
            sync_now_timeout_seconds=_duration(
                "HUBSYNC_SYNC_NOW_TIMEOUT", get("HUBSYNC_SYNC_NOW_TIMEOUT"), 25.0, 1, 600
            ),
            hubspot_account_timezone=_timezone(
                "HUBSPOT_ACCOUNT_TIMEZONE", get("HUBSPOT_ACCOUNT_TIMEZONE")
            ),
            metrics_port=(
                _number("HUBSYNC_METRICS_PORT", get("HUBSYNC_METRICS_PORT"), 0, 1, 65535)
                if get("HUBSYNC_METRICS_PORT") is not None
                else None
            ),
            **_reports(get),
        )


def _reconciliation(env: Mapping[str, str], get: Callable[[str], str | None]) -> dict[str, Any]:
    """The reconciliation's settings. An empty HUBSYNC_RECONCILE_CRON (set but blank) turns
    the scheduled run off; so does an empty or zero HUBSYNC_CATCHUP_INTERVAL."""
    cron = get("HUBSYNC_RECONCILE_CRON")
    if cron is None and "HUBSYNC_RECONCILE_CRON" not in env:
        cron = DEFAULT_RECONCILE_CRON
    if cron is not None:
        _cron("HUBSYNC_RECONCILE_CRON", cron)
    mode = (get("HUBSYNC_RECONCILE_MODE") or "fix").lower()
    interval = get("HUBSYNC_CATCHUP_INTERVAL")
    catchup_off = "HUBSYNC_CATCHUP_INTERVAL" in env and interval in (None, "0")
    return {
        "reconcile_cron": cron,
        "reconcile_mode": _choice("HUBSYNC_RECONCILE_MODE", mode, RECONCILE_MODES),
        "reconcile_rate_share": _share(
            "HUBSYNC_RECONCILE_RATE_SHARE", get("HUBSYNC_RECONCILE_RATE_SHARE"), 0.5
        ),
        "reconcile_lease_seconds": _duration(
            "HUBSYNC_RECONCILE_LEASE", get("HUBSYNC_RECONCILE_LEASE"), 60.0, 1, 3600
        ),
        "reconcile_retention_seconds": _duration(
            "HUBSYNC_RECONCILE_RETENTION",
            get("HUBSYNC_RECONCILE_RETENTION"),
            90 * 86400.0,
            60,
            10 * 365 * 86400,
        ),
        "catchup_interval_seconds": None
        if catchup_off
        else _duration("HUBSYNC_CATCHUP_INTERVAL", interval, 300.0, 1, 86400),
        "catchup_overlap_seconds": _duration(
            "HUBSYNC_CATCHUP_OVERLAP", get("HUBSYNC_CATCHUP_OVERLAP"), 60.0, 0, 3600
        ),
    }


@dataclass(frozen=True)
class SmtpServer:
    """Where report e-mail is sent: `smtp://[user:password@]host[:port]` (STARTTLS unless
    HUBSYNC_REPORT_SMTP_STARTTLS=false) or `smtps://` (TLS from the first byte)."""

    host: str
    port: int
    tls: bool  # smtps://
    starttls: bool
    username: str | None = None
    password: Secret | None = None

    def describe(self) -> str:
        """Log-safe: the scheme, host and port, never the credentials."""
        return f"{'smtps' if self.tls else 'smtp'}://{self.host}:{self.port}"


_EMAIL = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+$")


def _reports(get: Callable[[str], str | None]) -> dict[str, Any]:
    """The report destinations. E-mail needs all of its server, sender and recipients."""
    webhook = get("HUBSYNC_REPORT_WEBHOOK_URL")
    if webhook is not None:
        _http_url("HUBSYNC_REPORT_WEBHOOK_URL", webhook)
    smtp_url = get("HUBSYNC_REPORT_SMTP_URL")
    starttls = _boolean(
        "HUBSYNC_REPORT_SMTP_STARTTLS", get("HUBSYNC_REPORT_SMTP_STARTTLS"), default=True
    )
    smtp = _smtp_server(smtp_url, starttls=starttls) if smtp_url is not None else None
    sender = get("HUBSYNC_REPORT_EMAIL_FROM")
    if sender is not None and not _EMAIL.match(sender):
        raise SettingsError(
            f"HUBSYNC_REPORT_EMAIL_FROM: expected an address like 'hubsync@example.com', "
            f"got {sender!r}"
        )
    recipients = tuple(
        r.strip() for r in (get("HUBSYNC_REPORT_EMAIL_TO") or "").split(",") if r.strip()
    )
    bad = [r for r in recipients if not _EMAIL.match(r)]
    if bad:
        raise SettingsError(
            f"HUBSYNC_REPORT_EMAIL_TO: expected comma-separated addresses, got {bad[0]!r}"
        )
    if smtp is not None and (sender is None or not recipients):
        raise SettingsError(
            "HUBSYNC_REPORT_SMTP_URL: e-mail reports also need HUBSYNC_REPORT_EMAIL_FROM "
            "and HUBSYNC_REPORT_EMAIL_TO"
        )
    if smtp is None and (sender is not None or recipients):
        raise SettingsError(
            "HUBSYNC_REPORT_EMAIL_TO: e-mail reports need HUBSYNC_REPORT_SMTP_URL "
            "(smtp://user:password@host:587)"
        )
    return {
        "report_webhook_url": _secret(webhook),
        "report_smtp": smtp,
        "report_email_from": sender,
        "report_email_to": recipients,
    }


def _smtp_server(value: str, *, starttls: bool) -> SmtpServer:
    """Parsed from `smtp://user:password@host:port`; a refused value is never echoed (it
    carries a password). Credentials are percent-decoded (`%40` for an `@`)."""
    name = "HUBSYNC_REPORT_SMTP_URL"
    expected = "expected a URL like 'smtp://user:password@host:587' or 'smtps://host:465'"
    try:
        parsed = urlsplit(value)
        port = parsed.port
    except ValueError:
        raise SettingsError(f"{name}: {expected}; the value is malformed") from None
    if parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
        raise SettingsError(f"{name}: {expected}")
    tls = parsed.scheme == "smtps"
    return SmtpServer(
        host=parsed.hostname,
        port=port or (465 if tls else 587),
        tls=tls,
        starttls=starttls and not tls,
        username=unquote(parsed.username) if parsed.username else None,
        password=Secret(unquote(parsed.password)) if parsed.password is not None else None,
    )


def _cron(name: str, value: str) -> None:
    from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415 -- only when set

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise SettingsError(
            f"{name}: expected a crontab line like '0 3 * * *' (UTC), got {value!r}: {exc}"
        ) from None


def _share(name: str, value: str | None, default: float) -> float:
    """A share from `50%` or `0.5`, above 0 and at most 1."""
    if value is None:
        return default
    text = value.strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise SettingsError(
            f"{name}: expected a share like '50%' or '0.5', got {value!r}"
        ) from None
    if not 0 < share <= 1:
        raise SettingsError(f"{name}: expected more than 0 and at most 100%, got {value!r}")
    return share


def read_env_file(path: Path) -> dict[str, str]:
    """Parse `KEY=value` lines; `#` comments, `export ` prefixes and quotes are allowed."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{path}:{number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value is not None else None


def _database_url(name: str, value: str | None) -> str:
    if value is None:
        return DEFAULT_DATABASE_URL
    try:
        url = make_url(value)
    # A bad port raises ValueError with the text of the URL in it: never shown.
    except (ArgumentError, ValueError):
        raise SettingsError(
            f"{name}: expected a database URL like 'postgresql+asyncpg://user@host/db' or "
            f"'sqlite+aiosqlite:///./hubsync.db', got something unparseable"
        ) from None
    driver = url.drivername
    if driver in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+asyncpg")
    elif driver == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    if url.drivername not in SUPPORTED_DRIVERS:
        raise SettingsError(
            f"{name}: expected a postgresql:// or sqlite:// URL, got driver {driver!r}"
        )
    if url.drivername.startswith("postgresql") and not url.database:
        raise SettingsError(f"{name}: the PostgreSQL URL names no database")
    return url.render_as_string(hide_password=False)


def _http_url(name: str, value: str) -> None:
    """An http(s) URL; a refused value is never echoed (it may carry credentials)."""
    try:
        parsed = urlsplit(value)
        parsed.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        raise SettingsError(f"{name}: expected an http(s) URL; the value is malformed") from None
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or any(c.isspace() for c in value)
    ):
        raise SettingsError(f"{name}: expected an http(s) URL like 'https://host'")


def sqlite_path_problem(url: str) -> str | None:
    """Why the SQLite file of `url` cannot be used, or None (also for other databases)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "the URL is malformed"
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    folder = path.parent if str(path.parent) else Path()
    if path.is_dir():
        return f"the SQLite path {path} is a directory"
    if not folder.is_dir():
        return f"the SQLite file's directory {folder} does not exist"
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"the SQLite file {path} is not writable by this user"
    return None


def _rate_limit(name: str, value: str | None, default: str) -> RateLimit:
    try:
        return RateLimit.parse(value or default)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SettingsError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(
    name: str, value: str | None, default: float, minimum: float, maximum: float
) -> float:
    """Seconds from `90`, `90s`, `1.5m`, `24h` or `7d`, within [minimum, maximum]."""
    if value is None:
        return default
    match = _DURATION.match(value)
    if not match:
        raise SettingsError(f"{name}: expected a duration like '30s', '15m', '24h', got {value!r}")
    seconds = float(match[1]) * _DURATION_UNITS[match[2] or "s"]
    if not minimum <= seconds <= maximum:
        raise SettingsError(
            f"{name}: expected between {minimum:g}s and {maximum:g}s, got {value!r}"
        )
    return seconds


def _timezone(name: str, value: str | None) -> str:
    """An IANA time zone name such as 'America/New_York' (default UTC)."""
    if value is None:
        return "UTC"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"{name}: expected an IANA time zone like 'America/New_York', got {value!r}"
        ) from None
    return value


def _trusted_proxies(value: str | None) -> tuple[str, ...]:
    """Comma-separated addresses or networks (CIDR), or "*"; each checked here, as uvicorn
    would take a typo for a host name and silently trust nothing."""
    if value is None:
        return ("127.0.0.1",)
    entries = tuple(entry.strip() for entry in value.split(","))
    if entries == ("*",):
        return entries
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(
                "HUBSYNC_TRUSTED_PROXIES: expected comma-separated IP addresses or networks "
                f"(e.g. 10.0.0.0/8), or *; got {entry!r}"
            ) from None
    return entries


def _number(name: str, value: str | None, default: int, minimum: int, maximum: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name}: expected a whole number, got {value!r}") from None
    if not minimum <= number <= maximum:
        raise SettingsError(f"{name}: expected {minimum} to {maximum}, got {number}")
    return number


def _boolean(name: str, value: str | None, *, default: bool) -> bool:
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: expected true or false, got {value!r}")
