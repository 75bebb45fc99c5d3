"""Preview a rule change or a scope change before it is saved (`?dry_run=true`, the console's
Preview button): read WARP's customers once and hubsync's memory in a few whole-table
queries, then forecast with `app.sync.core.preview`. No HubSpot call; nothing written."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store.memory_scan import active_links, memory_of_fields, open_conflicts_on
from app.store.sync_config import load_rules
from app.store.sync_scope import load_scope
from app.sync.core.mapping import path_column
from app.sync.core.preview import RulesForecast, ScopeForecast
from app.sync.core.rules import FieldRule, validate_rules
from app.sync.core.scope import Scope
from app.sync.operator.actions import check_rules_for_warp, check_scope_for_warp
from app.warp.connector import CustomerRecord, WarpConnector

PAGE = 5000
T = TypeVar("T")


async def preview_rules(
    engine: AsyncEngine,
    warp: WarpConnector,
    rules: Sequence[FieldRule],
    *,
    warp_engine: AsyncEngine,
    customers_table: str,
) -> dict[str, Any]:
    """What saving `rules` would do at the next sync of every linked, in-scope customer."""
    validate_rules(rules)
    await check_rules_for_warp(warp_engine, customers_table, rules)
    started = datetime.now(UTC)
    async with engine.connect() as connection:
        forecast = RulesForecast(await load_rules(connection), rules)
        scope = await load_scope(connection)
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
        for customer in customers:
            cid = str(customer["id"])
            if cid in links and scope.admits(customer):
                forecast.add(customer, memory.get(cid, {}), conflicts.get(cid, set()))
    return {
        "dry_run": True,
        **forecast.to_json(datetime.now(UTC)),
        "out_of_scope_not_counted": not scope.everyone,
        "computed_in_ms": _ms_since(started),
    }


async def preview_scope(
    engine: AsyncEngine,
    warp: WarpConnector,
    scope: Scope,
    *,
    warp_engine: AsyncEngine,
    customers_table: str,
) -> dict[str, Any]:
    """Who would enter and who would leave the sync scope if `scope` were saved."""
    await check_scope_for_warp(warp_engine, customers_table, scope)
    started = datetime.now(UTC)
    async with engine.connect() as connection:
        forecast = ScopeForecast(await load_scope(connection), scope)
        links = await active_links(connection)
    columns = [*forecast.before.columns, *scope.columns]
    async for page in warp.iter_columns(columns, PAGE):
        for customer in page:
            forecast.add(customer, linked=str(customer["id"]) in links)
    return {"dry_run": True, **forecast.to_json(), "computed_in_ms": _ms_since(started)}


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
