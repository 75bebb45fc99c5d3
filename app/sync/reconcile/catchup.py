"""The catch-up: every few minutes, whatever changed on either side since the last look is
queued, so a lost webhook or gateway call is late by minutes, not by a day.

- HubSpot: a search on `hs_lastmodifieddate` in [watermark - overlap, now), sorted by it,
  200 a page through the search budget (5/s). A search answers at most 10,000 results, so a
  window holding more is split in two until each half fits.
- WARP: customers with `updated_at` in the same kind of window, by keyset pages.

A change no later than the link's `last_synced_at` was hubsync's own write (or is synced
already) and is skipped, so hubsync's own traffic does not come back as work. The overlap
covers HubSpot's search index lag and clocks that disagree by a little. Each side's
watermark moves only after its window's jobs are committed; one replica does each pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from app.hubspot.models import HubSpotCompany, SearchPage
from app.store import catchup as marks
from app.store.queue import QueueRepository
from app.sync.core.jobs import EntityType, JobDirection, JobSource
from app.sync.engine.pairs import LAST_MODIFIED, parse_time
from app.warp.connector import WarpConnector

log = logging.getLogger("hubsync.catchup")

SEARCH_PAGE = 200
SEARCH_CAP = 10_000  # HubSpot answers no result past this offset of one query
JOB_PRIORITY = 6
HUBSPOT, WARP = "hubspot", "warp"


class SearchHubSpot(Protocol):
    async def search_companies(
        self,
        filter_groups: Sequence[Mapping[str, Any]],
        properties: Sequence[str],
        sorts: Sequence[Any] = (),
        limit: int = 100,
        after: str | None = None,
    ) -> SearchPage: ...


@dataclass(frozen=True)
class CatchupResult:
    hubspot: int | None  # jobs queued; None when another replica had this pass
    warp: int | None
    searches: int = 0


class CatchUp:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        warp: WarpConnector,
        hubspot: SearchHubSpot,
        queue: QueueRepository,
        owner: str,
        interval_seconds: float,
        overlap_seconds: float,
        after_commit: Callable[[], None] | None = None,
        search_cap: int = SEARCH_CAP,
    ) -> None:
        self.search_cap = search_cap
        self.engine = engine
        self.warp = warp
        self.hubspot = hubspot
        self.queue = queue
        self.owner = owner
        self.interval = interval_seconds
        self.overlap = timedelta(seconds=overlap_seconds)
        self.after_commit = after_commit
        self._searches = 0

    async def __call__(self) -> CatchupResult:
        self._searches = 0
        hubspot = await self.hubspot_pass()
        warp = await self.warp_pass()
        if hubspot or warp:
            log.info("catch-up queued %s HubSpot and %s WARP change(s)", hubspot, warp)
        return CatchupResult(hubspot, warp, self._searches)

    async def _window(self, source: str) -> tuple[datetime, datetime] | None:
        # The lease keeps the other replicas out until just before the next pass is due.
        mark = await marks.claim_pass(self.engine, source, self.owner, self.interval * 0.8)
        if mark is None:
            return None
        until = datetime.now(UTC)
        start = mark.watermark or until - timedelta(seconds=self.interval)
        return start - self.overlap, until

    async def _advance(self, source: str, until: datetime, queued: int) -> None:
        async with self.engine.begin() as connection:
            await marks.advance(connection, source, self.owner, until, queued)

    # -- WARP --------------------------------------------------------------------------------

    async def warp_pass(self) -> int | None:
        window = await self._window(WARP)
        if window is None:
            return None
        since, until = window
        queued = 0
        async for customers in self.warp.iter_updated_since(since):
            ids = [customer["id"] for customer in customers]
            async with self.engine.connect() as connection:
                synced = await marks.last_synced(connection, customer_ids=ids)
            changed = [
                customer["id"]
                for customer in customers
                if not _ours(parse_time(customer.get("updated_at")), synced.get(customer["id"]))
            ]
            queued += await self._enqueue(EntityType.CUSTOMER, changed, JobDirection.TO_HUBSPOT)
        await self._advance(WARP, until, queued)
        return queued

    # -- HubSpot -----------------------------------------------------------------------------

    async def hubspot_pass(self) -> int | None:
        window = await self._window(HUBSPOT)
        if window is None:
            return None
        since, until = window
        queued = await self._search_window(since, until)
        await self._advance(HUBSPOT, until, queued)
        return queued

    async def _search_window(self, since: datetime, until: datetime) -> int:
        queued, after, first = 0, None, True
        while True:
            page = await self._search(since, until, after)
            if first and page.total > self.search_cap and until - since > timedelta(milliseconds=2):
                middle = since + (until - since) / 2
                return await self._search_window(since, middle) + await self._search_window(
                    middle, until
                )
            first = False
            queued += await self._queue_companies(page.companies)
            if page.after is None or int(page.after) >= self.search_cap:
                return queued
            after = page.after

    async def _search(self, since: datetime, until: datetime, after: str | None) -> SearchPage:
        self._searches += 1
        window = [
            {"propertyName": LAST_MODIFIED, "operator": "GTE", "value": str(_ms(since))},
            {"propertyName": LAST_MODIFIED, "operator": "LT", "value": str(_ms(until))},
        ]
        return await self.hubspot.search_companies(
            [{"filters": window}],
            [LAST_MODIFIED],
            sorts=[{"propertyName": LAST_MODIFIED, "direction": "ASCENDING"}],
            limit=SEARCH_PAGE,
            after=after,
        )

    async def _queue_companies(self, companies: list[HubSpotCompany]) -> int:
        async with self.engine.connect() as connection:
            synced = await marks.last_synced(connection, company_ids=[c.id for c in companies])
        changed = [
            company.id
            for company in companies
            if not _ours(parse_time(company.properties.get(LAST_MODIFIED)), synced.get(company.id))
        ]
        return await self._enqueue(EntityType.COMPANY, changed, JobDirection.TO_WARP)

    async def _enqueue(self, kind: EntityType, keys: list[str], direction: JobDirection) -> int:
        if not keys:
            return 0
        async with self.engine.begin() as connection:
            result = await self.queue.enqueue_many(
                connection,
                kind,
                keys,
                priority=JOB_PRIORITY,
                source=JobSource.RECONCILIATION,
                direction=direction,
            )
        if self.after_commit is not None:
            self.after_commit()
        return len(result.job_ids)


def _ours(changed_at: datetime | None, synced_at: datetime | None) -> bool:
    return changed_at is not None and synced_at is not None and changed_at <= synced_at


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
