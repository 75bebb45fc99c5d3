"""How one sandbox behaves: limits, identity, the webhook target and its delivery timing."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import httpx

from app.settings import RateLimit


@dataclass
class SandboxConfig:
    rate_limit: RateLimit = field(default_factory=lambda: RateLimit(100, 10.0))
    search_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(5, 1.0))
    daily_limit: int = 250_000  # private app, Free/Starter
    # The daily limit resets at midnight here (HubSpot: the account's time zone).
    account_timezone: str = "UTC"
    client_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    app_id: str = "1"
    portal_id: int = 1
    webhook_url: str | None = None
    # None accepts any (or no) Bearer token; a value requires exactly that token.
    access_token: str | None = None
    webhook_batch_size: int = 100
    webhook_delay_seconds: float = 0.05  # the batch window after the first pending event
    # Tests route deliveries into an in-process ASGI app with httpx.ASGITransport.
    webhook_transport: httpx.AsyncBaseTransport | None = None
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 10
    webhook_retry_base_seconds: float = 1.0  # attempt n waits base * 2**(n-1), capped below
    webhook_retry_max_seconds: float = 3600.0
    webhook_concurrency: int = 10  # HubSpot sends at most 10 requests at once per app
    search_result_cap: int = 10_000
    # HubSpot's search index lags writes by "a few moments"; search answers as of this long ago.
    search_index_delay_seconds: float = 0.0
    # Real HubSpot answers requested-but-unset properties as null; its OpenAPI schema says
    # strings only. False (default) omits them; True mimics the real API.
    unset_properties_as_null: bool = False
    # A latency model (app/sandbox/latency.py) to start with and keep after a reset, e.g.
    # "hubspot-2026"; None answers as fast as the machine can.
    latency_model: str | None = None
    first_company_id: int = 1001
    request_log_size: int = 100_000  # newest request records kept for inspection
