"""The console's pages (GET): customers, a customer, conflicts, failed work, job and event
lists, rules, audit (the dashboard and reconciliation have their own modules). Each reads
through app/store and renders; the same figures are served as JSON by app/api/operator.py."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.admin.access import Session
from app.admin.rendering import render, signed_in
from app.admin.rules_form import CHOICES, rules_for_form
from app.admin.scope_form import OPS, scope_rows
from app.admin.who import Who, who_of
from app.api.deps import app_context
from app.api.query import query_text, query_uuid
from app.store import sync_state
from app.store.admin_audit import recent_actions
from app.store.console import (
    FailedFilter,
    failed_error_kinds,
    failed_jobs,
    jobs_page,
    list_conflicts,
)
from app.store.queue import STATES
from app.store.sync_config import config_history, load_rules
from app.store.sync_scope import scope_record
from app.store.webhook_events import STATUSES as EVENT_STATUSES
from app.store.webhook_events import list_events
from app.sync.core.rules import rule_to_dict
from app.sync.operator.overview import unlinked_customers
from app.warp.connector import SqlWarpConnector
from app.warp.search import search_customers

HISTORY_ROWS = 50


async def _whos(request: Request, jobs: list[Any]) -> dict[str, Who]:
    """BAN and name for every job row of a page: one WARP read for the page."""
    return await who_of(
        app_context(request),
        [j.entity_key for j in jobs if j.entity_type == "customer"],
        [j.entity_key for j in jobs if j.entity_type != "customer"],
    )


def _before(request: Request, name: str = "before") -> int | None:
    raw = request.query_params.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


@signed_in
async def customers(request: Request, session: Session) -> Response:
    context = app_context(request)
    query = query_text(request, "q") or ""
    after = query_uuid(request, "after")
    unlinked = request.query_params.get("unlinked") == "1"
    found: list[dict[str, Any]] = []
    by_company = None
    warp = context.warp
    if isinstance(warp, SqlWarpConnector):
        if unlinked:
            found = await unlinked_customers(context.engine, warp, after_id=after)
        else:
            if query.isdigit():  # a HubSpot company id
                async with context.engine.connect() as connection:
                    by_company = (await sync_state.links_by_company(connection, [query])).get(query)
            found = await search_customers(warp, query, after_id=after)
    ids = [c["id"] for c in found]
    async with context.engine.connect() as connection:
        links = await sync_state.links_by_customer(connection, ids)
    return await render(
        request,
        session,
        "customers.html",
        q=query,
        unlinked=unlinked,
        customers=found,
        links=links,
        by_company=by_company,
        next_after=found[-1]["id"] if len(found) >= 50 else None,
    )


@signed_in
async def conflicts(request: Request, session: Session) -> Response:
    state = "resolved" if request.query_params.get("state") == "resolved" else "open"
    async with app_context(request).engine.connect() as connection:
        rows = await list_conflicts(connection, state=state, before_id=_before(request))
    return await render(
        request,
        session,
        "conflicts.html",
        rows=rows,
        whos=await who_of(app_context(request), [c.warp_customer_id for c in rows]),
        state=state,
        error=request.query_params.get("error_id"),
        next_before=rows[-1].id if len(rows) >= 50 else None,
    )


@signed_in
async def failed(request: Request, session: Session) -> Response:
    where = FailedFilter(
        kind=query_text(request, "kind"),
        source=query_text(request, "source"),
        text=query_text(request, "text"),
    )
    async with app_context(request).engine.connect() as connection:
        jobs = await failed_jobs(connection, where, before_id=_before(request))
        kinds = await failed_error_kinds(connection)
        events = await list_events(
            connection, status="failed", before_id=_before(request, "ebefore")
        )
    return await render(
        request,
        session,
        "failed.html",
        jobs=jobs,
        whos=await _whos(request, jobs),
        where=where,
        kinds=kinds,
        events=events,
        next_before=jobs[-1].id if len(jobs) >= 50 else None,
    )


@signed_in
async def jobs(request: Request, session: Session) -> Response:
    state = request.query_params.get("state", "pending")
    state = state if state in STATES else "pending"
    async with app_context(request).engine.connect() as connection:
        rows = await jobs_page(connection, state, before_id=_before(request))
    return await render(
        request,
        session,
        "jobs.html",
        rows=rows,
        whos=await _whos(request, rows),
        state=state,
        states=STATES,
        next_before=rows[-1].id if len(rows) >= 50 else None,
    )


@signed_in
async def events(request: Request, session: Session) -> Response:
    status = request.query_params.get("status", "failed")
    status = status if status in EVENT_STATUSES else "failed"
    async with app_context(request).engine.connect() as connection:
        rows = await list_events(connection, status=status, before_id=_before(request))
    return await render(
        request,
        session,
        "events.html",
        rows=rows,
        status=status,
        statuses=EVENT_STATUSES,
        next_before=rows[-1].id if len(rows) >= 50 else None,
    )


@signed_in
async def rules(request: Request, session: Session) -> Response:
    async with app_context(request).engine.connect() as connection:
        current = [rule_to_dict(rule) for rule in await load_rules(connection)]
        history = await config_history(connection, limit=20)
    return await render(
        request,
        session,
        "rules.html",
        rows=rules_for_form(current),
        choices=CHOICES,
        history=history,
        error=None,
        preview=None,
    )


@signed_in
async def scope(request: Request, session: Session) -> Response:
    async with app_context(request).engine.connect() as connection:
        stored = await scope_record(connection)
    return await render(
        request,
        session,
        "scope.html",
        rows=scope_rows(stored["conditions"]),
        ops=OPS,
        error=None,
        preview=None,
        stored=stored,
    )


@signed_in
async def audit(request: Request, session: Session) -> Response:
    async with app_context(request).engine.connect() as connection:
        entries = await recent_actions(connection, before_id=_before(request))
    return await render(
        request,
        session,
        "audit.html",
        entries=entries,
        next_before=entries[-1].id if len(entries) >= 50 else None,
    )
