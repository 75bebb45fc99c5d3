"""The full run reads HubSpot from both ends (app/sync/reconcile/scan.py) once the portal is
big enough: the list from the lowest id up, a search from the highest down. Every company is
judged exactly once, wherever it sits, and companies the search's index did not show yet
are read at the end."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from app.hubspot.models import CompanyPage, SearchPage
from app.hubspot.ratelimit import Grant, LocalRateLimiter, RateLimiter
from app.sandbox.config import SandboxConfig
from app.sandbox.sandbox import Sandbox
from app.settings import RateLimit
from app.sync.reconcile.full_run import TOP_AFTER_LIST_PAGES
from tests.conftest import Database
from tests.reconcile_support import items, reconcile
from tests.syncenv import SyncEnv, sync_env

CRM_USER = Sandbox.user_source(7)
UNMANAGED = 100 * (TOP_AFTER_LIST_PAGES + 8)  # companies without a warp_ban: 18 list pages


def seed_portal(env: SyncEnv) -> list[str]:
    """Orphans (a warp_ban no customer has) at the bottom, the middle and the top of the
    ids, between companies hubsync does not manage. Their ids, in that order."""
    orphans = []
    for n in range(UNMANAGED):
        if n in (0, UNMANAGED // 2, UNMANAGED - 1):
            ghost = {"name": f"Ghost {n}", "warp_ban": f"ZT-GHOST-{n}"}
            orphans.append(env.sandbox.companies.create(ghost, CRM_USER).id)
        env.sandbox.companies.create({"name": f"Prospect {n}"}, CRM_USER)
    return orphans


async def test_a_big_portal_is_read_from_both_ends_each_company_once(db: Database) -> None:
    async with sync_env(db) as env:
        orphans = seed_portal(env)
        run = await reconcile(env)
        assert run.counts == {"orphan": 3, "unmanaged": UNMANAGED}
        found = [item["hubspot_company_id"] for item in await items(env, run, "orphan")]
        assert sorted(found) == sorted(orphans)
        # The list alone would have taken 19 pages; the search read from the top meanwhile.
        searches = [r for r in env.sandbox.request_log if r.search]
        assert searches
        assert run.hubspot_calls < 19


async def test_a_run_that_gives_way_to_live_syncs_finds_the_same(db: Database) -> None:
    async with sync_env(db) as env:
        orphans = seed_portal(env)
        run = await reconcile(env, time_share=0.5)  # as `serve` runs it beside live syncs
        assert run.counts == {"orphan": 3, "unmanaged": UNMANAGED}
        found = [item["hubspot_company_id"] for item in await items(env, run, "orphan")]
        assert sorted(found) == sorted(orphans)


async def test_companies_the_index_did_not_show_yet_are_read_at_the_end(db: Database) -> None:
    config = SandboxConfig(rate_limit=RateLimit(1000, 1.0), search_index_delay_seconds=1.0)
    async with sync_env(db, config) as env:
        orphans = seed_portal(env)
        await asyncio.sleep(1.1)  # the index shows them
        # Made just now: the search's index does not show it for another second.
        late = env.sandbox.companies.create({"name": "Late", "warp_ban": "ZT-LATE"}, CRM_USER)
        run = await reconcile(env)
        assert run.counts == {"orphan": 4, "unmanaged": UNMANAGED}
        found = [item["hubspot_company_id"] for item in await items(env, run, "orphan")]
        assert sorted(found) == sorted([*orphans, late.id])


class ArchivesMidWindow:
    """The client, except that once the search's first page from the top has answered, a
    person archives a company that page held before the page at offset 200 is answered:
    every later offset of that window is one off. The list waits (past the pages it reads
    before the search joins) until the search has answered offset 400, so the top of the
    portal is the search's to read."""

    def __init__(self, env: SyncEnv, archived: str) -> None:
        self.client = env.client
        self.sandbox = env.sandbox
        self.archived = archived
        self.first_answered = asyncio.Event()
        self.window_answered = asyncio.Event()
        self.list_pages = 0
        self.moved = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def list_companies_page(self, *args: Any, **kwargs: Any) -> CompanyPage:
        self.list_pages += 1
        if self.list_pages > TOP_AFTER_LIST_PAGES:
            await self.window_answered.wait()
        page: CompanyPage = await self.client.list_companies_page(*args, **kwargs)
        return page

    async def search_companies(self, *args: Any, **kwargs: Any) -> SearchPage:
        after = args[4] if len(args) > 4 else kwargs.get("after")
        if after == "200" and not self.moved:
            self.moved = True
            await self.first_answered.wait()
            self.sandbox.companies.archive(self.archived, CRM_USER)
        page: SearchPage = await self.client.search_companies(*args, **kwargs)
        if after is None:
            self.first_answered.set()
        if after == "400":
            self.window_answered.set()
        return page


async def test_a_window_of_the_search_that_moves_is_read_again(db: Database) -> None:
    async with sync_env(db) as env:
        orphans = seed_portal(env)
        ids = sorted(int(c.id) for c in env.sandbox.companies.active())
        archived = str(ids[-50])  # on the search's first page, read before it goes
        hubspot = ArchivesMidWindow(env, archived)
        run = await reconcile(env, hubspot=hubspot)
        assert hubspot.moved
        # Without reading the window again, the company that moved from offset 200 to 199
        # would be judged by no page.
        assert run.counts == {"orphan": 3, "unmanaged": UNMANAGED}
        found = [item["hubspot_company_id"] for item in await items(env, run, "orphan")]
        assert sorted(found) == sorted(orphans)


class RecordingLimiter:
    """The client's own limiter, noting when each grant is handed out."""

    def __init__(self, inner: LocalRateLimiter, events: list[str]) -> None:
        self.inner = inner
        self.events = events

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def acquire(self) -> Grant:
        grant = await self.inner.acquire()
        self.events.append("grant")
        return grant


class ListInFlight:
    """The client over a `RecordingLimiter`, noting when each list page is asked for and
    answered; HubSpot takes 10 ms more to answer each."""

    def __init__(self, env: SyncEnv) -> None:
        self.events: list[str] = []
        limiter = RecordingLimiter(cast(LocalRateLimiter, env.client.limiter), self.events)
        self.client = env.client.with_limiter(cast(RateLimiter, limiter))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def list_companies_page(self, *args: Any, **kwargs: Any) -> CompanyPage:
        self.events.append("ask")
        page: CompanyPage = await self.client.list_companies_page(*args, **kwargs)
        await asyncio.sleep(0.01)
        self.events.append("answer")
        return page


async def test_the_list_takes_its_next_grant_while_its_page_is_in_flight(db: Database) -> None:
    async with sync_env(db) as env:
        orphans = seed_portal(env)
        hubspot = ListInFlight(env)
        run = await reconcile(env, hubspot=hubspot)
        assert run.counts == {"orphan": 3, "unmanaged": UNMANAGED}
        found = [item["hubspot_company_id"] for item in await items(env, run, "orphan")]
        assert sorted(found) == sorted(orphans)
        # When a page is answered, the next page's grant is already taken: it was taken
        # while this page was in flight, not after its answer.
        asks = grants = answers = 0
        for event in hubspot.events:
            asks += event == "ask"
            grants += event == "grant"
            if event == "answer":
                answers += 1
                assert grants > asks, hubspot.events
        assert answers > TOP_AFTER_LIST_PAGES
