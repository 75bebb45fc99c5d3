"""The console's actions (POST, CSRF-checked, each audited as the signed-in operator):
pause/resume, resolve a conflict, re-run failed jobs and webhook events, sync a customer now,
save the rules (or preview them), set the sync scope (or preview it)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.admin.access import Session
from app.admin.rendering import back_to, render, safe_next, signed_in
from app.admin.rules_form import CHOICES, rows_from_form, rules_from_rows
from app.admin.scope_form import OPS, conditions_from_rows, scope_rows_from_form
from app.api.config import refresh_for
from app.api.deps import app_context
from app.context import AppContext
from app.hubspot.errors import HubSpotError
from app.store.console import FailedFilter
from app.store.pauses import DIRECTIONS
from app.store.queue import QueueRepository
from app.store.sync_config import config_history
from app.sync.core.rules import InvalidRuleError
from app.sync.core.scope import InvalidScopeError, scope_from_dicts
from app.sync.operator import actions as operations
from app.sync.operator.preview import REFRESH_DEFAULT, Refresh, preview_rules, preview_scope
from app.sync.operator.resolution import (
    ResolutionError,
    ResolveServices,
    parse_choice,
    resolve_conflict,
)
from app.sync.schedule.runtime import wake_worker
from app.warp.columns import TableMissingError
from app.warp.connector import canonical_id

MAX_SELECTED = 1000


def _queue(context: AppContext) -> QueueRepository:
    queue = context.queue
    return queue if isinstance(queue, QueueRepository) else QueueRepository(context.engine)


def _ids(values: list[Any]) -> list[int]:
    return [int(v) for v in values[:MAX_SELECTED] if isinstance(v, str) and v.isdigit()][
        :MAX_SELECTED
    ]


@signed_in
async def change_direction(request: Request, session: Session) -> Response:
    context = app_context(request)
    form = await request.form()
    direction, verb = request.path_params["direction"], request.path_params["verb"]
    back = safe_next(str(form.get("next", "")))
    if direction not in DIRECTIONS or verb not in ("pause", "resume"):
        return await render(request, session, "missing.html", 404, what="that direction")
    if verb == "pause":
        reason = str(form.get("reason", "")).strip()[:500] or None
        changed = await operations.pause(context.engine, direction, by=session.who, reason=reason)
    else:
        changed = await operations.resume(context.engine, direction, by=session.who)
        wake_worker(context)
    notice = ("paused" if verb == "pause" else "resumed") if changed else "already"
    return back_to(back.split("?")[0], notice, direction=direction)


@signed_in
async def resolve(request: Request, session: Session) -> Response:
    context = app_context(request)
    form = await request.form()
    raw_id = request.path_params["conflict_id"]
    if not raw_id.isdigit():
        return await render(request, session, "missing.html", 404, what=f"conflict {raw_id}")
    value = form.get("value")
    try:
        resolution = await resolve_conflict(
            ResolveServices.for_context(context),
            int(raw_id),
            parse_choice(form.get("choice", "")),
            value if isinstance(value, str) else None,
            by=session.who,
        )
    except ResolutionError as exc:
        status = {"not_found": 404, "not_open": 409, "paused": 409, "customer_deleted": 409}.get(
            exc.reason, 422
        )
        return await render(request, session, "error.html", status, message=str(exc))
    if resolution.outcome is None:
        wake_worker(context)
        return back_to("/admin/conflicts", "resolved-queued", n=resolution.conflict.id)
    return back_to("/admin/conflicts", "resolved", n=resolution.conflict.id)


@signed_in
async def retry_failed(request: Request, session: Session) -> Response:
    context = app_context(request)
    form = await request.form()
    only = form.get("only")
    if isinstance(only, str) and only.isdigit():
        count = await operations.retry_failed_jobs(
            _queue(context), by=session.who, job_ids=[int(only)]
        )
    elif form.get("all") == "1":
        count = await operations.retry_failed_jobs(
            _queue(context), by=session.who, matching=FailedFilter.from_params(form)
        )
    else:
        count = await operations.retry_failed_jobs(
            _queue(context), by=session.who, job_ids=_ids(form.getlist("job_ids"))
        )
    wake_worker(context)
    return back_to("/admin/failed", "retried", n=count)


@signed_in
async def reprocess_events(request: Request, session: Session) -> Response:
    context = app_context(request)
    form = await request.form()
    ids = _ids(form.getlist("event_ids"))
    only = form.get("only")
    if isinstance(only, str) and only.isdigit():
        ids = [int(only)]
    everything = form.get("all") == "1"
    if not ids and not everything:
        return back_to("/admin/failed", "reprocessed", n=0)
    summary = await operations.reprocess_webhook_events(
        context.engine,
        _queue(context),
        by=session.who,
        app_id=context.settings.hubspot_app_id,
        event_ids=None if everything else ids,
        status="failed" if everything else None,
    )
    wake_worker(context)
    return back_to("/admin/failed", "reprocessed", n=summary.get("received", 0))


@signed_in
async def sync_now(request: Request, session: Session) -> Response:
    context = app_context(request)
    raw = request.path_params["customer_id"]
    try:
        key = canonical_id(raw)
    except ValueError:
        return await render(request, session, "missing.html", 404, what=f"customer {raw}")
    if not await context.warp.existing_ids([key]):
        return await render(request, session, "missing.html", 404, what=f"customer {key}")
    job_id = await operations.queue_customer_now(
        context.engine, _queue(context), key, by=session.who
    )
    wake_worker(context)
    return back_to(f"/admin/customers/{key}", "synced", n=job_id, job=job_id)


@signed_in
async def save_rules(request: Request, session: Session) -> Response:
    """Save the rules, or with the Preview button forecast what they would do (nothing saved)."""
    context = app_context(request)
    form = await request.form()
    rows = rows_from_form(form)
    try:
        rules = rules_from_rows(rows)
        if form.get("preview"):
            forecast = await preview_rules(
                context.engine,
                context.warp,
                rules,
                warp_engine=context.warp_engine,
                customers_table=context.settings.effective_customers_table,
                refresh=_refresh(context, form.get("refresh")),
            )
            async with context.engine.connect() as connection:
                history = await config_history(connection, limit=20)
            return await render(
                request,
                session,
                "rules.html",
                rows=rows,
                choices=CHOICES,
                history=history,
                error=None,
                preview=forecast,
            )
        await operations.change_rules(
            context.engine,
            rules,
            by=session.who,
            warp_engine=context.warp_engine,
            customers_table=context.settings.effective_customers_table,
        )
    except (InvalidRuleError, TableMissingError, HubSpotError) as exc:
        async with context.engine.connect() as connection:
            history = await config_history(connection, limit=20)
        return await render(
            request,
            session,
            "rules.html",
            422,
            rows=rows,
            choices=CHOICES,
            history=history,
            error={
                "detail": _detail(exc),
                "field": getattr(exc, "field", None),
            },
            preview=None,
        )
    return back_to("/admin/rules", "rules")


@signed_in
async def save_scope(request: Request, session: Session) -> Response:
    """Set the sync scope, or with the Preview button count who would enter and leave."""
    context = app_context(request)
    form = await request.form()
    rows = scope_rows_from_form(form)
    table = context.settings.effective_customers_table
    try:
        scope = scope_from_dicts(conditions_from_rows(rows))
        if form.get("preview"):
            forecast = await preview_scope(
                context.engine,
                context.warp,
                scope,
                warp_engine=context.warp_engine,
                customers_table=table,
                refresh=_refresh(context, form.get("refresh")),
            )
            return await render(
                request, session, "scope.html", rows=rows, ops=OPS, error=None, preview=forecast
            )
        await operations.change_scope(
            context.engine,
            scope,
            by=session.who,
            warp_engine=context.warp_engine,
            customers_table=table,
        )
    except (InvalidScopeError, TableMissingError, HubSpotError) as exc:
        error = {"detail": _detail(exc), "field": getattr(exc, "field", None)}
        return await render(
            request, session, "scope.html", 422, rows=rows, ops=OPS, error=error, preview=None
        )
    return back_to("/admin/scope", "scope")


def _refresh(context: AppContext, ticked: object) -> Refresh | None:
    """The Preview's "read HubSpot first" box: the API's `refresh=true` at its default limit."""
    return refresh_for(context, REFRESH_DEFAULT) if ticked else None


def _detail(exc: Exception) -> str:
    if isinstance(exc, TableMissingError):
        return f"{exc}; check WARP_CUSTOMERS_TABLE"
    if isinstance(exc, HubSpotError):
        return f"HubSpot could not be read for the preview ({exc}); nothing was saved, retry later"
    return str(exc)
