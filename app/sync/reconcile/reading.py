"""How the reconciliation reads HubSpot, for whoever else reads at its pace (the rule-change
preview's `refresh=true`): through the client capped to its share of HubSpot's window
(`HUBSYNC_RECONCILE_RATE_SHARE`, `app.hubspot.connection.share_capped_client`), and a call
HubSpot could not serve right now is asked again rather than failing the whole read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from app.hubspot.batch import BATCH_LIMIT
from app.hubspot.errors import HubSpotError, HubSpotNotFoundError, HubSpotRetryableError
from app.hubspot.models import BatchResult, HubSpotCompany

log = logging.getLogger("hubsync.reconcile")

PAGE_ATTEMPTS = 6
T = TypeVar("T")


class BatchReadHubSpot(Protocol):
    async def batch_read_companies(
        self, ids: Sequence[str], properties: Sequence[str], id_property: str | None = None
    ) -> BatchResult: ...


async def with_retries(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, asked again after HubSpot's `Retry-After` (else 1, 2, 4 … s, at most 60 s)
    while HubSpot answers that it cannot serve it right now (after the client's own retries)."""
    for attempt in range(PAGE_ATTEMPTS):
        try:
            return await call()
        except HubSpotRetryableError as exc:
            if attempt == PAGE_ATTEMPTS - 1:
                raise
            wait = exc.retry_after if exc.retry_after is not None else 2.0**attempt
            log.info("reconciliation: HubSpot %s; page asked again in %.1f s", exc, wait)
            await asyncio.sleep(min(wait, 60.0))
    raise HubSpotError("unreachable")  # pragma: no cover


async def read_companies(
    hubspot: BatchReadHubSpot, ids: Sequence[str], properties: Sequence[str]
) -> BatchResult:
    """Companies by id, one batch read per `BATCH_LIMIT` ids, each with retries."""
    return await with_retries(lambda: hubspot.batch_read_companies(ids, properties))


def calls_for(count: int) -> int:
    """How many batch reads `count` companies take."""
    return -(-count // BATCH_LIMIT)


@dataclass
class ShareReader:
    """Reads companies as the reconciliation does, through `hubspot` (the client capped to
    its share of the window), counting the calls. Only reads."""

    hubspot: BatchReadHubSpot
    calls: int = 0

    async def read(
        self, company_ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, HubSpotCompany | None]:
        """Company id -> the company as HubSpot holds it now, or None when HubSpot does not
        know it (deleted or archived). An id HubSpot answered otherwise for is left out."""
        result = await read_companies(self.hubspot, company_ids, properties)
        self.calls += calls_for(len(set(company_ids)))
        found: dict[str, HubSpotCompany | None] = {}
        for outcome in result:
            if outcome.company is not None:
                found[outcome.key] = outcome.company
            elif outcome.error is None or isinstance(outcome.error, HubSpotNotFoundError):
                found[outcome.key] = None
        return found
