"""The full reconciliation: every HubSpot company and every WARP customer, compared page by
page with flat memory, from a checkpoint.

Two passes, each a stream:

1. **HubSpot** (`phase = 'hubspot'`): the list API from the lowest id up, 100 companies a
   page, and a search by `hs_object_id` from the highest id down, 200 a page, meeting in
   between (`scan.py`), only the synced properties plus `warp_ban` and
   `hs_lastmodifieddate`. Each company is paired by its link,
   else by `warp_ban`, with its customer (read from WARP for that page only) and judged
   (`categories`). The customers met are written to `hubspot_reconciliation_pairs`, which is
   how a second company for one customer shows up as a duplicate.
2. **WARP** (`phase = 'warp'`): customers' ids by keyset pages; those no company claimed
   (read whole) are missing in HubSpot, or hold a link to a company that is archived or
   merged (repair).

Each page (or the pages that waited to be judged together) ends in one transaction holding
its items, its pairs, the queue jobs `fix` made for it and the checkpoint (HubSpot's paging
cursor and the search's position, WARP's keyset position), so a run taken over after its
process died resumes at the next page and its report is the one an
uninterrupted run would have written. `dry_run` writes only the run's own report.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from app.hubspot.client import SEARCH_LIMIT
from app.hubspot.models import BatchResult, CompanyPage, HubSpotCompany, SearchPage
from app.hubspot.ratelimit import RateLimiter
from app.hubspot.ratelimit_ahead import GrantAhead
from app.store import reconciliation as runs
from app.store import reconciliation_pairs as pairs
from app.store import sync_state
from app.store.queue import QueueRepository
from app.store.reconciliation import Checkpoint, LostRunError, RunRecord
from app.store.sync_config import load_rules
from app.store.sync_scope import load_scope
from app.sync.core.identity import usable_ban
from app.sync.core.jobs import EntityType, JobDirection, JobSource
from app.sync.core.rules import IDENTITY_HUBSPOT_PROPERTY, FieldRule
from app.sync.core.scope import EVERYONE, Scope
from app.sync.engine.pairs import LAST_MODIFIED
from app.sync.reconcile import categories as judge
from app.sync.reconcile.catchup import SEARCH_CAP, SearchHubSpot
from app.sync.reconcile.categories import REPORTED, Category, Finding, FixAction
from app.sync.reconcile.company_page import MERGED_IDS, PageFacts, company_ban, merged_ids
from app.sync.reconcile.reading import calls_for, read_companies, with_retries
from app.sync.reconcile.scan import Scan
from app.warp.connector import WarpConnector

log = logging.getLogger("hubsync.reconcile")
T = TypeVar("T")

FIX, DRY_RUN = "fix", "dry_run"
MODES = (DRY_RUN, FIX)
JOB_PRIORITY = 8  # behind live work (1 = most urgent, 5 = the API's default)
YIELD_EVERY = 10  # companies judged between two turns of the event loop
# The search from the top joins once the list has read this many pages: a smaller portal is
# read by the list alone (and only a long pass is worth a second stream).
TOP_AFTER_LIST_PAGES = 10
# How far HubSpot's search index lags writes ("a few moments"; the sandbox: 2 s): the search
# above the first page waits until this long after that page was asked for.
INDEX_LAG_SECONDS = 5.0
# Search pages from the top asked for at once: a round trip (~300 ms) is longer than the
# 5/s budget's spacing, and the budget (the limiter) decides the pace, not this. Pages are
# taken in order and a place is asked for again only when the oldest is taken: with 3, one
# slow answer (the model's p99 is 1 s) left the budget idle behind it.
TOP_IN_FLIGHT = 5
# The list's next grant is taken while its page is in flight (`GrantAhead`) and used if the
# page before answered within this long (a cycle is 130-250 ms; the window is 10 s).
LIST_GRANT_FRESH_SECONDS = 1.0
# Pages each stream reads ahead of the judging: when the judging falls behind, up to twice
# this many are judged together.
READ_AHEAD_PAGES = 4


class ReconcileHubSpot(SearchHubSpot, Protocol):
    """What the full run needs from HubSpot (the client, capped to the run's share): the
    list, batch reads and (from the top, `scan.py`) search."""

    @property
    def limiter(self) -> RateLimiter: ...

    async def list_companies_page(
        self,
        properties: Sequence[str],
        after: str | None = None,
        *,
        limiter: RateLimiter | None = None,
    ) -> CompanyPage: ...

    async def batch_read_companies(
        self, ids: Sequence[str], properties: Sequence[str], id_property: str | None = None
    ) -> BatchResult: ...


@dataclass
class Progress:
    """Where a run stands, for whoever watches (the CLI prints it)."""

    run_id: int
    phase: str
    pages: int
    counts: dict[str, int]
    hubspot_calls: int
    jobs_created: int


@dataclass
class _State:
    phase: str
    hubspot_after: str | None
    warp_after: str | None
    scan: Scan = field(default_factory=Scan)
    counts: Counter[str] = field(default_factory=Counter)
    hubspot_calls: int = 0
    jobs_created: int = 0
    pages: int = 0
    hubspot_pages: int = 0  # as recorded, carried over a takeover
    warp_pages: int = 0

    @classmethod
    def of(cls, run: RunRecord) -> _State:
        return cls(
            run.phase,
            run.hubspot_after,
            run.warp_after,
            Scan.from_json(run.hubspot_scan),
            Counter(run.counts),
            run.hubspot_calls,
            run.jobs_created,
            hubspot_pages=run.hubspot_pages or 0,
            warp_pages=run.warp_pages or 0,
        )


class _ReadAhead:
    """The pages both streams have read and the judging has not taken yet: up to `limit`
    from each stream (one stream never crowds the other out), taken all at once."""

    def __init__(self, limit: int) -> None:
        self._pages: asyncio.Queue[_Page | BaseException] = asyncio.Queue()
        self._room = {True: asyncio.Semaphore(limit), False: asyncio.Semaphore(limit)}

    async def put(self, page: _Page) -> None:
        await self._room[page.from_top].acquire()
        self._pages.put_nowait(page)

    def fail(self, error: BaseException) -> None:
        """A stream's error, raised by the judging when it comes to it."""
        self._pages.put_nowait(error)

    async def take_all(self) -> list[_Page | BaseException]:
        """Every page waiting, in the order they came (at least one: waits for it)."""
        taken = [await self._pages.get()]
        while not self._pages.empty():
            taken.append(self._pages.get_nowait())
        for page in taken:
            if isinstance(page, _Page):
                self._room[page.from_top].release()
        return taken


@dataclass(frozen=True)
class _Page:
    """A page of companies from one of the two streams (`scan.py`); `last`: the stream's
    end; `after`: the list's cursor past it."""

    from_top: bool
    companies: list[HubSpotCompany]
    last: bool
    after: str | None = None


class FullRun:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        warp: WarpConnector,
        hubspot: ReconcileHubSpot,
        queue: QueueRepository,
        owner: str,
        lease_seconds: float,
        warp_page_size: int = 2000,
        on_progress: Callable[[Progress], None] | None = None,
        after_commit: Callable[[], None] | None = None,
        time_share: float = 1.0,
    ) -> None:
        """`time_share`: the most of this process's time judging pages may take; below 1
        the run pauses after each page for as long again as the share leaves to others
        (live syncs in the same process: reading HubSpot from both ends, a run judges
        faster than a capped window alone would let it)."""
        self.engine = engine
        self.warp = warp
        self.hubspot = hubspot
        self.queue = queue
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.warp_page_size = warp_page_size
        self.on_progress = on_progress
        self.after_commit = after_commit
        self.time_share = time_share
        # The HubSpot pass's pipeline: the page committing now, and the customers it claims.
        self._committing: asyncio.Task[None] | None = None
        self._uncommitted: dict[str, str] = {}
        self._top_began: float | None = None  # when this process first searched from the top
        self._scope: Scope = EVERYONE  # read when the run starts (or is taken over)

    async def execute(self, run: RunRecord) -> RunRecord | None:
        """Carry `run` (ours: just started or taken over) to its end from its checkpoint.
        Returns the finished record, or None when another process took the run over."""
        state = _State.of(run)
        heartbeat = asyncio.create_task(self._heartbeat(run.id))
        try:
            async with self.engine.connect() as connection:
                rules = [rule for rule in await load_rules(connection) if rule.enabled]
                self._scope = await load_scope(connection)
            if state.phase == "hubspot":
                await self._hubspot_pass(run, rules, state)
            if state.phase == "warp":
                await self._warp_pass(run, state)
        except LostRunError:
            log.warning("reconciliation run %d was taken over by another process", run.id)
            return None
        except Exception as exc:
            log.exception("reconciliation run %d failed", run.id)
            return await runs.finish_run(
                self.engine,
                run.id,
                self.owner,
                status=runs.FAILED,
                report=_report(state),
                error=f"{type(exc).__name__}: {exc}"[:2000],
            )
        finally:
            heartbeat.cancel()
        log.info(
            "reconciliation run %d done",
            run.id,
            extra={"run_id": run.id, "counts": dict(state.counts)},
        )
        return await runs.finish_run(
            self.engine, run.id, self.owner, status=runs.DONE, report=_report(state)
        )

    async def _heartbeat(self, run_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await runs.renew_lease(self.engine, run_id, self.owner, self.lease_seconds):
                    return
            except Exception:  # noqa: BLE001 -- a missed beat is retried; the lease has slack
                log.warning("reconciliation run %d: lease renewal failed", run_id)

    # -- pass 1: HubSpot's companies ---------------------------------------------------------

    async def _hubspot_pass(self, run: RunRecord, rules: list[FieldRule], state: _State) -> None:
        properties = [rule.hubspot_property for rule in rules]
        properties = list(
            dict.fromkeys([*properties, IDENTITY_HUBSPOT_PROPERTY, LAST_MODIFIED, MERGED_IDS])
        )
        # Both streams read ahead into a short queue while pages are judged one at a time, in
        # the order they came, and a page's transaction commits while the next is judged:
        # HubSpot's pace, our work and the database's overlap instead of adding up. Only a
        # committed page moves the checkpoint, and pages commit in order.
        pages = _ReadAhead(READ_AHEAD_PAGES)
        list_far = asyncio.Event()  # the list is long enough to read from the top too
        if state.scan.top_low is not None:
            list_far.set()
        streams = []
        if not state.scan.list_done:
            streams.append(self._list_stream(properties, state.hubspot_after, pages, list_far))
        if not state.scan.top_done:
            streams.append(self._top_stream(properties, state.scan.top_low, pages, list_far))
        readers = [asyncio.create_task(stream) for stream in streams]
        scan = replace(state.scan)  # as judged so far (committed or committing)
        list_after = state.hubspot_after
        self._committing = None
        self._uncommitted = {}
        self._top_began = None
        try:
            while not scan.met:
                # Every page waiting is judged and committed together: one set of queries and
                # one transaction for them all, so a run that falls behind HubSpot's pace
                # spends less per page instead of more. Pages are taken in the order they
                # came, each through `scan`, up to the one that completes the pass.
                waiting = await pages.take_all()
                chosen, taken, list_after, error = _take_pages(waiting, scan, list_after)
                if taken:  # what came before an error is judged first
                    await self._judge_and_commit(
                        run, state, rules, chosen, taken, scan=scan, list_after=list_after
                    )
                if error is not None:
                    raise error
            for reader in readers:
                reader.cancel()
            if not scan.done and self._top_began is not None:
                lag = self._top_began + INDEX_LAG_SECONDS - asyncio.get_running_loop().time()
                await asyncio.sleep(max(0.0, lag))
            while not scan.done:
                tail = await self._search(properties, "GT", scan.top_high, "ASCENDING")
                ids = [int(c.id) for c in tail.companies]
                judged = scan.take_tail_page(ids, len(ids) < SEARCH_LIMIT)
                chosen = [c for c in tail.companies if int(c.id) in judged]
                await self._judge_and_commit(
                    run, state, rules, chosen, 1, scan=scan, list_after=list_after
                )
            if self._committing is not None:
                await self._committing
        finally:
            for reader in readers:
                reader.cancel()
            if self._committing is not None and not self._committing.done():
                self._committing.cancel()

    async def _judge_and_commit(
        self,
        run: RunRecord,
        state: _State,
        rules: list[FieldRule],
        chosen: list[HubSpotCompany],
        pages: int,
        *,
        scan: Scan,
        list_after: str | None,
    ) -> None:
        """Judge the `chosen` companies of `pages` pages and start their commit once the
        pages before have committed (`scan`, `list_after`: where HubSpot's streams stand
        after them)."""
        began = time.perf_counter()
        findings, claimed = await self._judge_companies(run.id, chosen, rules, self._uncommitted)
        await asyncio.sleep(pause_after(time.perf_counter() - began, self.time_share))
        if self._committing is not None:
            await self._committing
        self._committing = asyncio.create_task(
            self._commit(
                run,
                state,
                findings,
                claimed,
                phase="warp" if scan.done else "hubspot",
                hubspot_after=list_after,
                warp_after=None,
                calls=pages,
                pages=pages,
                scan=replace(scan),
            )
        )
        self._uncommitted = claimed

    async def _list_stream(
        self,
        properties: list[str],
        after: str | None,
        pages: _ReadAhead,
        far: asyncio.Event,
    ) -> None:
        """The list API's pages from cursor `after` to the end, into `pages`; sets `far`
        after `TOP_AFTER_LIST_PAGES` of them. Each page's cursor comes from the page before,
        so the pages go one after another; each next page's grant is taken while its page
        before is in flight, not after it answers."""
        grants: GrantAhead | None = None
        try:
            grants = GrantAhead(self.hubspot.limiter, LIST_GRANT_FRESH_SECONDS)
            for number in itertools.count(1):
                page: CompanyPage = await self._with_retries(
                    partial(self.hubspot.list_companies_page, properties, after, limiter=grants)
                )
                after = page.after
                await pages.put(_Page(False, page.companies, last=after is None, after=after))
                if after is None:
                    return
                if number >= TOP_AFTER_LIST_PAGES:
                    far.set()
        except Exception as exc:  # noqa: BLE001 -- the judging loop raises it
            pages.fail(exc)
        finally:
            if grants is not None:
                grants.close()

    async def _top_stream(
        self,
        properties: list[str],
        below: int | None,
        pages: _ReadAhead,
        far: asyncio.Event,
    ) -> None:
        """Search pages from the highest id down (below `below`), into `pages`, once `far`
        is set: keyset by `hs_object_id`, so the search's 10,000-result cap never applies.

        A search's round trip (~300 ms) is longer than search's budget allows between two
        (5/s), so `TOP_IN_FLIGHT` pages are asked for at once: within one keyset window
        (`hs_object_id < below`), the pages at offsets 0, 200, … up to the cap, then the next
        window below the last page. The pages are put in order, and each must say the same
        total as the window's first and lie below the page before it: a company archived,
        restored or merged away in the window meanwhile would shift the offsets, so the
        window is asked again from below the last page put."""
        try:
            await far.wait()
            self._top_began = asyncio.get_running_loop().time()
            in_flight: deque[asyncio.Task[SearchPage]] = deque()
            try:
                while True:
                    window = below  # this window: the ids below it
                    window_total: int | None = None
                    offsets = iter(range(0, SEARCH_CAP - SEARCH_LIMIT + 1, SEARCH_LIMIT))
                    while True:
                        for offset in itertools.islice(offsets, TOP_IN_FLIGHT - len(in_flight)):
                            search = self._search(properties, "LT", window, "DESCENDING", offset)
                            in_flight.append(asyncio.create_task(search))
                        if not in_flight:
                            break  # the window is read: the next lies below its last page
                        found = await in_flight.popleft()
                        ids = [int(c.id) for c in found.companies]
                        if window_total is None:  # the window's first page
                            window_total = found.total
                        elif found.total != window_total or (
                            ids and below is not None and max(ids) >= below
                        ):
                            log.info("reconciliation: the search window moved; read again")
                            break
                        last = len(ids) < SEARCH_LIMIT
                        await pages.put(_Page(True, found.companies, last=last))
                        if last:
                            return
                        below = min(ids)
                    for task in in_flight:
                        task.cancel()
                    in_flight.clear()
            finally:
                for task in in_flight:
                    task.cancel()
        except Exception as exc:  # noqa: BLE001 -- the judging loop raises it
            pages.fail(exc)

    async def _search(
        self,
        properties: list[str],
        operator: str,
        bound: int | None,
        direction: str,
        offset: int = 0,
    ) -> SearchPage:
        """One keyset page of companies by `hs_object_id` (`operator` `bound`, if any), from
        `offset` on in that order."""
        filters = [{"propertyName": "hs_object_id", "operator": operator, "value": str(bound)}]
        groups = [{"filters": filters}] if bound is not None else []
        sorts = [{"propertyName": "hs_object_id", "direction": direction}]
        page: SearchPage = await self._with_retries(
            partial(
                self.hubspot.search_companies,
                groups,
                properties,
                sorts,
                SEARCH_LIMIT,
                str(offset) if offset else None,
            )
        )
        return page

    async def _judge_companies(
        self,
        run_id: int,
        companies: list[HubSpotCompany],
        rules: list[FieldRule],
        uncommitted: dict[str, str],
    ) -> tuple[list[Finding], dict[str, str]]:
        """Each company's finding, and the customers this page claims (customer -> company)."""
        merged_away = {c.id: merged_ids(c) for c in companies}
        company_ids = [c.id for c in companies] + [m for ids in merged_away.values() for m in ids]
        # One connection (one transaction) for the page's reads of hubsync's tables.
        async with self.engine.connect() as connection:
            links = await sync_state.links_by_company(connection, company_ids)
            by_id = await self.warp.fetch_customers(
                [link.warp_customer_id for link in links.values() if link.warp_customer_id]
            )
            # Only companies their link does not pair are looked up by warp_ban.
            linked = {
                c.id
                for c in companies
                if (link := links.get(c.id)) and link.warp_customer_id in by_id
            }
            bans = {
                b for c in companies if c.id not in linked and (b := usable_ban(company_ban(c)))
            }
            by_ban = await self.warp.fetch_customers_by_ban(sorted(bans)) if bans else {}
            customer_ids = sorted({*by_id, *(c["id"] for c in by_ban.values())})
            # Another page can have paired only a customer met by ban, by a link left behind
            # by a merge, or by a link that is not active: a customer's one link pairs it once.
            page_ids = {c.id for c in companies}
            contested = sorted(
                {c["id"] for c in by_ban.values()}
                | {
                    link.warp_customer_id
                    for company_id, link in links.items()
                    if link.warp_customer_id
                    and (company_id not in page_ids or link.state != "active")
                }
            )
            facts = PageFacts(
                links=links,
                merged_away=merged_away,
                by_id=by_id,
                by_ban=by_ban,
                customer_links=await sync_state.links_by_customer(
                    connection, [c["id"] for c in by_ban.values()]
                ),
                claimed_before={
                    **await pairs.paired_customers(connection, run_id, contested),
                    **uncommitted,
                },
                memory=await sync_state.field_memory(connection, customer_ids),
                conflicts=await pairs.open_conflict_fields(connection, customer_ids),
                scope=self._scope,
            )
        findings: list[Finding] = []
        for number, company in enumerate(companies):
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # judging is CPU work: let live syncs in between
            findings += facts.judge(company, rules)
        return findings, facts.claimed

    # -- pass 2: WARP's customers ------------------------------------------------------------

    async def _warp_pass(self, run: RunRecord, state: _State) -> None:
        """Customers no company claimed. Only the ids are read for every customer (pages of
        `warp_page_size`); the whole record only for the few no company claimed. The next
        page's ids are read, and a page's transaction commits, while a page is checked."""
        async with self.engine.begin() as connection:
            await pairs.refresh_statistics(connection)
        id_pages = self.warp.iter_columns([], self.warp_page_size, after=state.warp_after)
        committing: asyncio.Task[None] | None = None
        try:
            async for rows in _one_ahead(id_pages):
                findings, calls = await self._unclaimed(run, [row["id"] for row in rows])
                if committing is not None:
                    await committing  # pages commit in order
                committing = asyncio.create_task(
                    self._commit(
                        run,
                        state,
                        findings,
                        {},
                        phase="warp",
                        hubspot_after=None,
                        warp_after=rows[-1]["id"],
                        calls=calls,
                    )
                )
            if committing is not None:
                await committing
        finally:
            if committing is not None and not committing.done():
                committing.cancel()

    async def _unclaimed(self, run: RunRecord, ids: list[str]) -> tuple[list[Finding], int]:
        """The findings for those of these customers no company claimed, and the HubSpot
        calls they took."""
        async with self.engine.connect() as connection:
            paired = await pairs.paired_customers(connection, run.id, ids)
            unpaired = [i for i in ids if i not in paired]
            links = await sync_state.links_by_customer(connection, unpaired)
        customers = await self.warp.fetch_customers(unpaired)
        lost = [
            link.hubspot_company_id
            for link in links.values()
            if link.hubspot_company_id and link.state == "active"
        ]
        survivors = await self._survivors(lost)
        findings: list[Finding] = []
        for customer_id in unpaired:
            customer = customers.get(customer_id)
            if customer is None:  # deleted since its id was read: nothing to reconcile
                continue
            link = links.get(customer_id)
            if not self._scope.admits(customer):  # counted; never created nor fixed
                findings.append(Finding(Category.OUT_OF_SCOPE, customer_id))
            elif link is None or not link.hubspot_company_id:
                findings.append(judge.missing_in_hubspot(customer))
            elif survivors.get(link.hubspot_company_id) == link.hubspot_company_id:
                # Listed after the HubSpot pass went by (created or restored meanwhile).
                findings.append(Finding(Category.IN_SYNC, customer_id))
            else:
                survivor = survivors.get(link.hubspot_company_id)
                findings.append(judge.lost_company(customer, link, survivor))
        return findings, calls_for(len(lost))

    async def _survivors(self, company_ids: list[str]) -> dict[str, str]:
        """Of linked companies the list did not show: the id each now answers as (itself when
        it is live after all, the survivor after a merge); absent = archived or deleted."""
        if not company_ids:
            return {}
        result = await read_companies(self.hubspot, company_ids, [IDENTITY_HUBSPOT_PROPERTY])
        return {o.key: o.company.id for o in result if o.company is not None}

    # -- one page's transaction ------------------------------------------------------------

    async def _commit(
        self,
        run: RunRecord,
        state: _State,
        findings: list[Finding],
        claimed: dict[str, str],
        *,
        phase: str,
        hubspot_after: str | None,
        warp_after: str | None,
        calls: int = 0,
        pages: int = 1,
        scan: Scan | None = None,
    ) -> None:
        """Record a page: its items, pairs and jobs with the checkpoint after it (`calls`:
        HubSpot calls the page cost that `state` does not count yet; `scan`: where HubSpot's
        two streams stand after it, unchanged if None)."""
        scan = scan or state.scan
        counts = state.counts + Counter(str(f.category) for f in findings)
        for finding in findings:  # Counter addition drops zeros; keep every category seen
            counts.setdefault(str(finding.category), 0)
        jobs: dict[tuple[EntityType, str], int] = {}
        async with self.engine.begin() as connection:
            fixable = [job for f in findings if (job := _fix_job(f)) is not None]
            for kind in (EntityType.CUSTOMER, EntityType.COMPANY):
                keys = [key for of_kind, key in fixable if of_kind is kind]
                if run.mode != FIX or not keys:
                    continue
                enqueued = await self.queue.enqueue_many(
                    connection,
                    kind,
                    keys,
                    priority=JOB_PRIORITY,
                    source=JobSource.RECONCILIATION,
                    direction=JobDirection.BOTH,
                )
                jobs.update({(kind, key): job for key, job in enqueued.job_ids.items()})
            items = [
                f.item(jobs.get(_fix_job(f) or (EntityType.CUSTOMER, "")))
                for f in findings
                if f.category in REPORTED
            ]
            await runs.add_items(connection, run.id, items)
            await pairs.add_pairs(connection, run.id, claimed.items())
            checkpoint = Checkpoint(
                phase=phase,
                hubspot_after=hubspot_after,
                warp_after=warp_after,
                counts=dict(counts),
                hubspot_calls=state.hubspot_calls + calls,
                jobs_created=state.jobs_created + len(jobs),
                hubspot_scan=scan.to_json(),
                hubspot_pages=state.hubspot_pages + pages * (warp_after is None),
                warp_pages=state.warp_pages + pages * (warp_after is not None),
            )
            await runs.save_checkpoint(
                connection, run.id, self.owner, checkpoint, self.lease_seconds
            )
        state.counts = counts
        state.hubspot_calls += calls
        state.jobs_created += len(jobs)
        state.phase, state.hubspot_after, state.warp_after = phase, hubspot_after, warp_after
        state.scan = scan
        state.pages += 1
        state.hubspot_pages = checkpoint.hubspot_pages
        state.warp_pages = checkpoint.warp_pages
        if jobs and self.after_commit is not None:
            self.after_commit()
        if self.on_progress is not None:
            self.on_progress(
                Progress(
                    run.id,
                    phase,
                    state.pages,
                    dict(counts),
                    state.hubspot_calls,
                    state.jobs_created,
                )
            )

    async def _with_retries(self, call: Callable[[], Any]) -> Any:
        """A page HubSpot could not serve right now is asked again (after the client's own
        retries), rather than failing a run that may be hours in."""
        return await with_retries(call)


async def _one_ahead(pages: AsyncIterator[T]) -> AsyncIterator[T]:
    """`pages`, each next one read while the one before is used."""
    reading = asyncio.ensure_future(_next_or_none(pages))
    try:
        while (page := await reading) is not None:
            reading = asyncio.ensure_future(_next_or_none(pages))
            yield page
    finally:
        reading.cancel()


async def _next_or_none(pages: AsyncIterator[T]) -> T | None:
    try:
        return await anext(pages)
    except StopAsyncIteration:
        return None


def _take_pages(
    waiting: list[_Page | BaseException], scan: Scan, list_after: str | None
) -> tuple[list[HubSpotCompany], int, str | None, BaseException | None]:
    """Pages in the order they came, each through `scan`, up to the one that completes the
    pass or an error: the companies to judge now, how many pages were taken, the list's
    cursor after them, and the error that stopped them (None)."""
    chosen: list[HubSpotCompany] = []
    taken = 0
    for page in waiting:
        if isinstance(page, BaseException):
            return chosen, taken, list_after, page
        if scan.met:
            break
        ids = [int(c.id) for c in page.companies]
        if page.from_top:
            judged = scan.take_top_page(ids, page.last)
        else:
            judged = scan.take_list_page(ids, page.last)
            list_after = page.after
        chosen += [c for c in page.companies if int(c.id) in judged]
        taken += 1
    return chosen, taken, list_after, None


def _fix_job(finding: Finding) -> tuple[EntityType, str] | None:
    """The job `fix` queues for a finding: a sync of its customer, or — to adopt a company
    — of the company itself, which the engine pairs by its normalised `warp_ban` (a customer
    job would look the company up in HubSpot by the exact ban, miss `"ZT-100000001 "` and
    create a second company)."""
    if not finding.fixable or not finding.customer_id:
        return None
    if finding.action is FixAction.ADOPT and finding.company_id:
        return EntityType.COMPANY, finding.company_id
    return EntityType.CUSTOMER, finding.customer_id


def pause_after(busy: float, time_share: float) -> float:
    """How long to pause after `busy` seconds of work so the work takes `time_share` of the
    time (0 at a share of 1)."""
    return busy * (1 - time_share) / time_share if 0 < time_share < 1 else 0.0


def _report(state: _State) -> dict[str, Any]:
    return {
        "counts": dict(state.counts),
        "hubspot_calls": state.hubspot_calls,
        "jobs_created": state.jobs_created,
    }
