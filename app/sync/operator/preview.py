"""Preview a rule change or a scope change before it is saved (`?dry_run=true`, the console's
Preview button): read WARP's customers once and hubsync's memory in a few whole-table
queries, then forecast with `app.sync.core.preview`. Nothing is written, ever.

By default no HubSpot call: the forecast is as good as field memory is fresh. With a
`CompanyReader` (`refresh=true`) HubSpot's current values of the linked companies involved
are read first, at most `limit` of them, at the reconciliation's pace (the caller hands in
the reconciliation's reader, `app.sync.reconcile.reading.ShareReader`), and those customers
are decided as the engine's next sync would decide them (`Pair`); the rest, if the read was
cut short, from memory — and the answer says which is which."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.hubspot.batch import BATCH_LIMIT
from app.hubspot.models import HubSpotCompany
from app.store.memory_scan import active_links, memory_of_fields, open_conflicts_on
from app.store.sync_config import load_rules
from app.store.sync_scope import load_scope
from app.store.sync_state import field_memory
from app.sync.core.jobs import JobSource, stand_in_job
from app.sync.core.mapping import MappingError, path_column
from app.sync.core.preview import RulesForecast, ScopeForecast
from app.sync.core.records import FieldMemory
from app.sync.core.rules import FieldRule, validate_rules
from app.sync.core.scope import Scope
from app.sync.engine.pairs import LAST_MODIFIED, Pair
from app.sync.operator.actions import check_rules_for_warp, check_scope_for_warp
from app.warp.connector import CustomerRecord, WarpConnector

PAGE = 5000
# How many companies `refresh=true` reads unless asked otherwise, and at most: one batch read
# per 100, so 10 and 100 calls; 100,000 linked customers would be 1,000 calls.
REFRESH_DEFAULT = 1000
REFRESH_MAX = 10_000
T = TypeVar("T")


class CompanyReader(Protocol):
    """Reads HubSpot's companies now (`app.sync.reconcile.reading.ShareReader`)."""

    calls: int

    async def read(
        self, company_ids: Sequence[str], properties: Sequence[str]
    ) -> Mapping[str, HubSpotCompany | None]: ...


@dataclass
class Refresh:
    """`refresh=true`: read with `reader`, at most `limit` companies."""

    reader: CompanyReader
    limit: int = REFRESH_DEFAULT
    rate_share: float | None = None  # the reconciliation's share, as reported

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= REFRESH_MAX:
            raise ValueError(f"refresh limit must be 1..{REFRESH_MAX}, got {self.limit}")


@dataclass
class _Reads:
    """What a refresh read: company id -> company (None: HubSpot does not know it)."""

    companies: dict[str, HubSpotCompany | None]
    wanted: int  # linked, in-scope customers a full refresh would have read
    asked: int  # company ids asked for (at most the limit)
    took_ms: int
    read_at: datetime | None

    def to_json(self, refresh: Refresh, from_memory: int) -> dict[str, Any]:
        found = sum(company is not None for company in self.companies.values())
        return {
            "companies_wanted": self.wanted,
            "companies_read": found,
            "companies_not_found": len(self.companies) - found,
            "hubspot_calls": refresh.reader.calls,
            "took_ms": self.took_ms,
            "read_at": self.read_at.isoformat() if self.read_at else None,
            "limit": refresh.limit,
            "cut_short": self.asked < self.wanted,
            "customers_from_memory": from_memory,
            "rate_share": refresh.rate_share,
        }


async def preview_rules(
    engine: AsyncEngine,
    warp: WarpConnector,
    rules: Sequence[FieldRule],
    *,
    warp_engine: AsyncEngine,
    customers_table: str,
    refresh: Refresh | None = None,
) -> dict[str, Any]:
    """What saving `rules` would do at the next sync of every linked, in-scope customer."""
    validate_rules(rules)
    await check_rules_for_warp(warp_engine, customers_table, rules)
    started = datetime.now(UTC)
    async with engine.connect() as connection:
        forecast = RulesForecast(await load_rules(connection), rules)
        scope = await load_scope(connection)
    reads: _Reads | None = None
    if forecast.rules:
        # The four reads overlap (each on its own connection): the database's time hides
        # behind the decoding of the others' rows.
        fields = forecast.fields_to_read
        columns = [*{path_column(r.warp_field) for r in forecast.rules}, *scope.columns]
        links, memory, conflicts, customers = await asyncio.gather(
            _read(engine, active_links),
            _read(engine, lambda c: memory_of_fields(c, fields)),
            _read(engine, lambda c: open_conflicts_on(c, fields)),
            _all_rows(warp, columns),
        )
        involved = [c for c in customers if str(c["id"]) in links and scope.admits(c)]
        if refresh is not None:
            company_ids = [links[str(c["id"])] for c in involved]
            properties = [*{rule.hubspot_property for rule in forecast.rules}, LAST_MODIFIED]
            reads = await _read_companies(refresh, company_ids, properties)
        for customer in involved:
            cid = str(customer["id"])
            seen, open_here = memory.get(cid, {}), conflicts.get(cid, set())
            if reads is None or (company_id := links[cid]) not in reads.companies:
                forecast.add(customer, seen, open_here)
            elif (company := reads.companies[company_id]) is not None:
                _add_read(forecast, customer, company, seen, open_here)
            # else: HubSpot does not know the company: the next sync marks its link deleted
            # and writes nothing (counted in `refresh.companies_not_found`).
    return {
        "dry_run": True,
        "refreshed": refresh is not None,
        **forecast.to_json(datetime.now(UTC)),
        "refresh": _refresh_json(refresh, reads, forecast.customers - forecast.refreshed),
        "out_of_scope_not_counted": not scope.everyone,
        "computed_in_ms": _ms_since(started),
    }


def _add_read(
    forecast: RulesForecast,
    customer: Mapping[str, Any],
    company: HubSpotCompany,
    memory: Mapping[str, FieldMemory],
    open_conflicts: set[str],
) -> None:
    """Decide a customer whose company was just read, with the engine's own pieces."""
    cid = str(customer["id"])
    pair = Pair(stand_in_job(cid, JobSource.API), dict(customer), None, memory)
    try:
        pair.read_warp(forecast.rules)
    except MappingError:
        forecast.add_read(cid, [], unreadable=forecast.fields_to_read)
        return
    pair.read_hubspot(forecast.rules, company)
    if pair.unreadable_reason(forecast.rules) is not None:  # the engine refuses the pair
        forecast.add_read(cid, [], unreadable=forecast.fields_to_read)
        return
    decision = pair.decide(forecast.rules)
    forecast.add_read(cid, decision.fields, open_conflicts)


async def _read_companies(
    refresh: Refresh, company_ids: Sequence[str], properties: Sequence[str]
) -> _Reads:
    """The first `refresh.limit` companies, a batch at a time."""
    began = time.perf_counter()
    asked = list(dict.fromkeys(company_ids))[: refresh.limit]
    companies: dict[str, HubSpotCompany | None] = {}
    for start in range(0, len(asked), BATCH_LIMIT):
        companies.update(await refresh.reader.read(asked[start : start + BATCH_LIMIT], properties))
    return _Reads(
        companies,
        wanted=len(set(company_ids)),
        asked=len(asked),
        took_ms=int((time.perf_counter() - began) * 1000),
        read_at=datetime.now(UTC) if asked else None,
    )


def _refresh_json(
    refresh: Refresh | None, reads: _Reads | None, from_memory: int
) -> dict[str, Any] | None:
    if refresh is None:
        return None
    reads = reads or _Reads({}, wanted=0, asked=0, took_ms=0, read_at=None)
    return reads.to_json(refresh, from_memory)


async def preview_scope(
    engine: AsyncEngine,
    warp: WarpConnector,
    scope: Scope,
    *,
    warp_engine: AsyncEngine,
    customers_table: str,
    refresh: Refresh | None = None,
) -> dict[str, Any]:
    """Who would enter and who would leave the sync scope if `scope` were saved; with
    `refresh`, also what the first sync back of those entering with a company would write,
    on their companies as HubSpot holds them now (those leaving are left untouched)."""
    await check_scope_for_warp(warp_engine, customers_table, scope)
    started = datetime.now(UTC)
    async with engine.connect() as connection:
        forecast = ScopeForecast(await load_scope(connection), scope)
        links = await active_links(connection)
    columns = [*forecast.before.columns, *scope.columns]
    returning: list[str] = []  # entering, with a company
    async for page in warp.iter_columns(columns, PAGE):
        for customer in page:
            cid = str(customer["id"])
            forecast.add(customer, linked=cid in links)
            if cid in links and scope.admits(customer) and not forecast.before.admits(customer):
                returning.append(cid)
    answer = {"dry_run": True, "refreshed": refresh is not None, **forecast.to_json()}
    if refresh is not None:
        answer["refresh"] = await _refresh_returning(engine, warp, refresh, returning, links)
    return {**answer, "computed_in_ms": _ms_since(started)}


async def _refresh_returning(
    engine: AsyncEngine,
    warp: WarpConnector,
    refresh: Refresh,
    returning: Sequence[str],
    links: Mapping[str, str],
) -> dict[str, Any]:
    """Read the companies of (the first `refresh.limit` of) the customers entering with a
    company, and decide each with the current rules, as their first sync back will."""
    async with engine.connect() as connection:
        rules = [rule for rule in await load_rules(connection) if rule.enabled]
    properties = [*{rule.hubspot_property for rule in rules}, LAST_MODIFIED]
    reads = await _read_companies(refresh, [links[cid] for cid in returning], properties)
    decided = [cid for cid in returning if links[cid] in reads.companies]
    customers = await warp.fetch_customers(decided)
    async with engine.connect() as connection:
        memory = await field_memory(connection, decided)
    counts = dict.fromkeys(
        ("decided", "write_hubspot", "write_warp", "conflicts", "unreadable", "company_gone"), 0
    )
    for cid in decided:
        company, customer = reads.companies[links[cid]], customers.get(cid)
        if company is None:
            counts["company_gone"] += 1  # the sync marks the link deleted, writes nothing
            continue
        if customer is None:
            continue  # deleted from WARP since the scan
        counts["decided"] += 1
        pair = Pair(stand_in_job(cid, JobSource.API), dict(customer), None, memory.get(cid, {}))
        try:
            pair.read_warp(rules)
        except MappingError:
            counts["unreadable"] += 1
            continue
        pair.read_hubspot(rules, company)
        if pair.unreadable_reason(rules) is not None:
            counts["unreadable"] += 1
            continue
        decision = pair.decide(rules)
        counts["write_hubspot"] += bool(decision.hubspot_writes)
        counts["write_warp"] += bool(decision.warp_writes)
        counts["conflicts"] += bool(decision.conflicts)
    return {
        **reads.to_json(refresh, len(returning) - len(decided)),
        "entering_with_company": {"customers": len(returning), **counts},
    }


async def _read(engine: AsyncEngine, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async with engine.connect() as connection:
        return await query(connection)


async def _all_rows(warp: WarpConnector, columns: Sequence[str]) -> list[CustomerRecord]:
    rows: list[CustomerRecord] = []
    async for page in warp.iter_columns(columns, PAGE):
        rows += page
    return rows


def _ms_since(started: datetime) -> int:
    return int((datetime.now(UTC) - started).total_seconds() * 1000)
