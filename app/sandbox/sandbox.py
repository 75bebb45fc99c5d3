"""The state of one sandbox portal and the handles tests and the control API use on it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from app.sandbox.config import SandboxConfig
from app.sandbox.errors import JsonDict
from app.sandbox.faults import FaultInjector, Faults
from app.sandbox.properties import PropertyRegistry
from app.sandbox.ratelimit import ApiLimiter, RequestLog, RequestRecord
from app.sandbox.store import ALL, CompanyStore, WriteSource
from app.sandbox.webhooks import WebhookDispatcher


class Sandbox:
    """One emulated HubSpot portal: properties, companies, limits, faults and webhooks."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.faults = FaultInjector(self.started_faults())
        self.webhooks = WebhookDispatcher(self.config, self.faults)
        self.properties = PropertyRegistry()
        self._build()

    def _build(self) -> None:
        config = self.config
        self.companies = CompanyStore(
            self.properties, self.webhooks.publish, first_id=config.first_company_id
        )
        self.limiter = ApiLimiter(
            config.rate_limit,
            config.search_rate_limit,
            config.daily_limit,
            account_timezone=ZoneInfo(config.account_timezone),
        )
        self.log = RequestLog(
            config.rate_limit.window_seconds,
            keep=config.request_log_size,
            search_window_seconds=config.search_rate_limit.window_seconds,
        )
        self.rate_limited_by_policy: Counter[str] = Counter()

    @property
    def rate_limited(self) -> int:
        """429s served, every policy."""
        return self.rate_limited_by_policy.total()

    @property
    def api_source(self) -> WriteSource:
        """Writes through the API are attributed to the app, as HubSpot does for private apps."""
        return WriteSource("INTEGRATION", self.config.app_id)

    @staticmethod
    def user_source(user_id: int) -> WriteSource:
        return WriteSource("CRM_UI", f"userId:{user_id}", user_id)

    # -- observation ---------------------------------------------------------------------

    @property
    def request_log(self) -> list[RequestRecord]:
        """API requests (not `/_sandbox/*`) in arrival order, refused ones included.

        Holds the newest `SandboxConfig.request_log_size`; `stats()` counts all of them.
        """
        return list(self.log.records)

    def request_times(self) -> list[float]:
        return [record.at for record in self.log.records]

    def stats(self) -> JsonDict:
        counts = self.webhooks.counts
        statuses = {str(code): n for code, n in sorted(self.log.by_status.items())}
        limit = self.config.rate_limit
        return {
            "requests": self.log.total,
            "writes": self.log.writes,
            "max_requests_in_window": self.log.max_in_window,
            "searches": self.log.searches,
            "max_searches_in_window": self.log.max_searches_in_window,
            "search_rate_limit": {
                "requests": self.config.search_rate_limit.requests,
                "window_seconds": self.config.search_rate_limit.window_seconds,
            },
            "rate_limit": {"requests": limit.requests, "window_seconds": limit.window_seconds},
            "rate_limited": self.rate_limited,
            "rate_limited_by_policy": dict(self.rate_limited_by_policy),
            "faults_injected": self.faults.injected,
            "responses_by_status": statuses,
            "daily_used": self.limiter.daily_used,
            "companies": len(self.companies),
            "webhooks_delivered": counts.batches_delivered,
            "webhook_events_delivered": counts.events_delivered,
            "webhooks_failed": counts.attempts_failed,
            "webhooks_abandoned": counts.batches_abandoned,
            "webhook_events_dropped": counts.events_dropped,
            "webhooks_pending": self.webhooks.pending,
            "webhooks_retrying": self.webhooks.retrying,
        }

    # -- control -------------------------------------------------------------------------

    def reset(self, *, keep_properties: bool = False) -> None:
        """Back to a fresh portal: no companies, no faults (but the latency model it was
        started with), empty logs and webhook queues."""
        self.webhooks.clear()
        self.faults.configure(self.started_faults())
        self.faults.injected = 0
        if not keep_properties:
            self.properties = PropertyRegistry()
        self._build()

    def started_faults(self) -> Faults:
        return Faults(latency_model=self.config.latency_model)

    def set_faults(self, faults: Faults | None = None, **changes: Any) -> Faults:
        """Replace the faults (`faults`), or change some fields of the current ones."""
        chosen = faults if faults is not None else Faults.from_json(
            {**self.faults.faults.settings(), **changes}
        )  # fmt: skip
        self.faults.configure(chosen)
        return chosen

    async def set_webhook_target(
        self, url: str | None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        """Point deliveries elsewhere; events produced while no URL was set are not kept."""
        self.config = replace(self.config, webhook_url=url, webhook_transport=transport)
        await self.webhooks.reconfigure(self.config)

    def edit_as_user(
        self,
        company_id: str,
        properties: Mapping[str, object],
        user_id: int = 1,
        id_property: str | None = None,
    ) -> JsonDict:
        """Change a company as a person in HubSpot's UI would (changeSource CRM_UI); found by
        its id, or by a unique property (`id_property`, e.g. warp_ban) as HubSpot's PATCH."""
        company = self.companies.update(
            str(company_id), properties, self.user_source(user_id), id_property=id_property
        )
        return company.to_json(ALL)

    def restore(self, company_id: str, user_id: int = 1) -> JsonDict:
        """Bring back an archived company (HubSpot's recycle bin); emits company.restore."""
        company = self.companies.restore(str(company_id), self.user_source(user_id))
        return company.to_json(ALL)

    async def flush_webhooks(self) -> int:
        return await self.webhooks.flush()
