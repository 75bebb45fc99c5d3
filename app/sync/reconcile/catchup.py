"""The catch-up: every few minutes, whatever changed on either side since the last look is
queued, so a lost webhook or gateway call is late by minutes, not by a day.

- HubSpot: a search on `hs_lastmodifieddate` in [watermark - overlap, now), sorted by it,
  200 a page through the search budget (5/s). A search answers at most 10,000 results, so a
  window holding more is split in two until each half fits. A window still too full when it
  is a few milliseconds wide (a bulk import) cannot be split by time: what the search
  returned is queued, and the cut is logged at warning, counted
  (`hubsync_catchup_windows_cut_short_total`) and kept on the watermark for the dashboard;
  the daily reconciliation reads the rest.
- WARP: on PostgreSQL, the rows written by transactions between the last pass's horizon and
  this one's (`xmin`, see `SqlWarpConnector.change_horizon`): commit order, so a transaction
  open for longer than the overlap, whose `updated_at` is already behind the watermark, is
  still read once it commits. On SQLite (one writer, short transactions), rows by
  `updated_at` in the time window, as before: there a transaction open longer than the
  overlap is not caught up until the daily reconciliation.

What counts as news: a HubSpot change is covered only by a sync that *read* the company at or
after it (the link's `hubspot_read_at`), never by a later write alone (a write of a field WARP
always wins does not read the company, and would otherwise mask a lost CRM edit). A change
not so covered is still no news when its values are what hubsync last saw there (its own
write: the search that found it read them); on WARP's side likewise. Nor is a hit that lags
behind hubsync's own later write: HubSpot's search index shows a company as it was a few
moments ago, so right after hubsync writes it (a mass change: thousands a minute) the search
still shows the version before, whose values hubsync has just replaced. Such a hit is left to
the next pass when the write (HubSpot's `updatedAt` in its answer, the link's
`hubspot_written_at`) falls in the next pass's window: that pass sees the written version, or a
later one, and judges it as above, so a CRM edit the lagging version held still arrives. Anything
else is queued. The overlap covers HubSpot's search index lag and clocks that disagree by a
little. Each side's watermark moves only after its window's jobs are committed; one replica
does each pass.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from app.hubspot.models import HubSpotCompany, SearchPage
from app.metrics.instruments import CATCHUP_CUT_SHORT
from app.store import catchup as marks
from app.store import sync_state
from app.store.queue import QueueRepository
from app.store.sync_config import load_rules
from app.sync.core.jobs import EntityType, JobDirection, JobSource
from app.sync.core.records import FieldMemory
from app.sync.core.rules import FieldRule
from app.sync.core.seen import hubspot_seen, warp_seen
from app.sync.engine.pairs import LAST_MODIFIED, parse_time
from app.warp.connector import CustomerRecord, WarpConnector

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
    cut_short: int = 0  # HubSpot windows whose results could not all be read


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
        self._cut_short: list[str] = []

    async def __call__(self) -> CatchupResult:
        self._searches = 0
        self._cut_short = []
        hubspot = await self.hubspot_pass()
        warp = await self.warp_pass()
        if hubspot or warp:
            log.info("catch-up queued %s HubSpot and %s WARP change(s)", hubspot, warp)
        return CatchupResult(hubspot, warp, self._searches, len(self._cut_short))

    async def _claim(self, source: str) -> tuple[marks.Watermark, tuple[datetime, datetime]] | None:
        # The lease keeps the other replicas out until just before the next pass is due.
        mark = await marks.claim_pass(self.engine, source, self.owner, self.interval * 0.8)
        if mark is None:
            return None
        until = datetime.now(UTC)
        start = mark.watermark or until - timedelta(seconds=self.interval)
        return mark, (start - self.overlap, until)

    async def _advance(
        self, source: str, until: datetime, queued: int, *, position: int | None = None
    ) -> None:
        async with self.engine.begin() as connection:
            await marks.advance(connection, source, self.owner, until, queued, position=position)
            if source == HUBSPOT and self._cut_short:
                await marks.record_cut_short(
                    connection, HUBSPOT, len(self._cut_short), self._cut_short[-1]
                )

    async def _knowledge(
        self, customer_ids: Sequence[str]
    ) -> tuple[tuple[FieldRule, ...], dict[str, dict[str, FieldMemory]]]:
        async with self.engine.connect() as connection:
            rules = tuple(rule for rule in await load_rules(connection) if rule.enabled)
            memory = await sync_state.field_memory(connection, customer_ids)
        return rules, memory

    # -- WARP --------------------------------------------------------------------------------

    async def warp_pass(self) -> int | None:
        claimed = await self._claim(WARP)
        if claimed is None:
            return None
        mark, (since, until) = claimed
        horizon = await self.warp.change_horizon()
        queued, met = 0, set[str]()
        async for customers in self._warp_changes(since, mark.position, horizon):
            fresh = [c for c in customers if c["id"] not in met]
            met.update(c["id"] for c in fresh)
            rules, memory = await self._knowledge([c["id"] for c in fresh])
            changed = [
                customer["id"]
                for customer in fresh
                if not warp_seen(rules, memory.get(customer["id"], {}), customer)
            ]
            queued += await self._enqueue(EntityType.CUSTOMER, changed, JobDirection.TO_HUBSPOT)
        await self._advance(WARP, until, queued, position=horizon)
        return queued

    async def _warp_changes(
        self, since: datetime, position: int | None, horizon: int | None
    ) -> AsyncIterator[list[CustomerRecord]]:
        """By time first, so a change arrives within one pass; then, on PostgreSQL, by commit
        order since the last pass's horizon: the rows of transactions that committed behind
        the watermark. (The horizon waits for the oldest transaction running anywhere on
        that server, so it alone would delay everything behind one long transaction.)"""
        async for customers in self.warp.iter_updated_since(since):
            yield customers
        if horizon is not None and position is not None:
            async for customers in self.warp.iter_written_between(position, horizon):
                yield customers

    # -- HubSpot -----------------------------------------------------------------------------

    async def hubspot_pass(self) -> int | None:
        claimed = await self._claim(HUBSPOT)
        if claimed is None:
            return None
        _, (since, until) = claimed
        # The next pass's window starts at `until` less the overlap; half of it is left for
        # clocks (HubSpot's write times against this host's `until`).
        queued = await self._search_window(since, until, next_from=until - self.overlap / 2)
        await self._advance(HUBSPOT, until, queued)
        return queued

    async def _search_window(self, since: datetime, until: datetime, *, next_from: datetime) -> int:
        """Queue the window's news; `next_from`: where the next pass's window surely starts."""
        queued, after, first = 0, None, True
        while True:
            page = await self._search(since, until, after)
            if first and page.total > self.search_cap and until - since > timedelta(milliseconds=2):
                middle = since + (until - since) / 2
                return await self._search_window(
                    since, middle, next_from=next_from
                ) + await self._search_window(middle, until, next_from=next_from)
            if first and page.total > self.search_cap:
                self._note_cut_short(since, until, page.total)
            first = False
            queued += await self._queue_companies(page.companies, next_from)
            if page.after is None or int(page.after) >= self.search_cap:
                return queued
            after = page.after

    def _note_cut_short(self, since: datetime, until: datetime, total: int) -> None:
        detail = (
            f"{since.isoformat()}..{until.isoformat()} held {total} results; "
            f"a search returns {self.search_cap}"
        )
        self._cut_short.append(detail)
        CATCHUP_CUT_SHORT.inc()
        log.warning(
            "catch-up window cut short: %s, too narrow to split; the rest waits for the "
            "daily reconciliation",
            detail,
        )

    async def _search(self, since: datetime, until: datetime, after: str | None) -> SearchPage:
        self._searches += 1
        window = [
            {"propertyName": LAST_MODIFIED, "operator": "GTE", "value": str(_ms(since))},
            {"propertyName": LAST_MODIFIED, "operator": "LT", "value": str(_ms(until))},
        ]
        async with self.engine.connect() as connection:
            rules = await load_rules(connection)
        properties = [LAST_MODIFIED, *(r.hubspot_property for r in rules if r.enabled)]
        return await self.hubspot.search_companies(
            [{"filters": window}],
            list(dict.fromkeys(properties)),
            sorts=[{"propertyName": LAST_MODIFIED, "direction": "ASCENDING"}],
            limit=SEARCH_PAGE,
            after=after,
        )

    async def _queue_companies(
        self, companies: list[HubSpotCompany], next_window_from: datetime
    ) -> int:
        ids = [c.id for c in companies]
        async with self.engine.connect() as connection:
            reads = await marks.company_reads(connection, ids)
        customers = [r.customer_id for r in reads.values() if r.customer_id]
        rules, memory = await self._knowledge(customers)
        # Read again after the memory: a sync that recorded its write in between (links and
        # memory commit together) shows here too, so written values are never set against
        # the write time from before them.
        async with self.engine.connect() as connection:
            reads = await marks.company_reads(connection, ids)
        changed = [
            company.id
            for company in companies
            if not _covered(company, reads.get(company.id), rules, memory, next_window_from)
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


def _covered(
    company: HubSpotCompany,
    read: marks.CompanyRead | None,
    rules: Sequence[FieldRule],
    memory: Mapping[str, Mapping[str, FieldMemory]],
    next_window_from: datetime,
) -> bool:
    """A change is no news when a sync read the company at or after it, when the search
    shows a version older than hubsync's own write and the next pass will see that write
    (`next_window_from`: where its window surely starts), or when the search shows the values
    hubsync last saw there (hubsync's own write)."""
    if read is None or read.customer_id is None:
        return False  # a company hubsync has no customer for: let a sync decide
    changed_at = parse_time(company.properties.get(LAST_MODIFIED))
    if changed_at is not None and read.read_at is not None and changed_at <= read.read_at:
        return True
    written_at = read.written_at
    if changed_at is not None and written_at is not None:
        # A version older than hubsync's write, which the next pass's window holds.
        lags = changed_at < written_at and written_at >= next_window_from
        if lags:
            return True  # the index lags behind hubsync's write: the next pass judges that
    return hubspot_seen(rules, memory.get(read.customer_id, {}), company.properties)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
