"""The console's reconciliation page: runs, a run's categories and items (keyset paged), its
CSV report behind the session, and "run now" in dry-run or fix mode — over
app/store/reconciliation.py and the Reconciler the API uses."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.admin.access import Session
from app.admin.rendering import back_to, render, signed_in
from app.api.deps import app_context
from app.api.reconciliation import csv_download
from app.store import reconciliation as runs
from app.store.admin_audit import record_action
from app.sync.reconcile.categories import REPORTED
from app.sync.reconcile.full_run import MODES
from app.sync.reconcile.service import Reconciler

ITEMS_PAGE = 100
RUNS_PAGE = 20


def _number(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() and len(raw) < 19 else None


@signed_in
async def reconciliation(request: Request, session: Session) -> Response:
    return await _page(request, session)


async def _page(
    request: Request, session: Session, status_code: int = 200, error: str | None = None
) -> Response:
    context = app_context(request)
    chosen = _number(request.query_params.get("run"))
    category = request.query_params.get("category")
    category = category if category in REPORTED else None
    after = _number(request.query_params.get("after")) or 0
    async with context.engine.connect() as connection:
        listed = await runs.list_runs(
            connection, limit=RUNS_PAGE, before_id=_number(request.query_params.get("before"))
        )
        if chosen is not None:
            run = await runs.get_run(connection, chosen)
            if run is None:
                return await render(request, session, "missing.html", 404, what="such a run")
        else:
            run = listed[0] if listed else None
        items = (
            await runs.items_page(
                connection, run.id, category=category, after_id=after, limit=ITEMS_PAGE
            )
            if run is not None
            else []
        )
    return await render(
        request,
        session,
        "reconciliation.html",
        status_code,
        runs=listed,
        run=run,
        items=items,
        category=category,
        categories=REPORTED,
        modes=MODES,
        error=error,
        available=isinstance(context.reconciler, Reconciler),
        next_after=items[-1]["id"] if len(items) == ITEMS_PAGE else None,
        next_before=listed[-1].id if len(listed) == RUNS_PAGE else None,
    )


@signed_in
async def run_now(request: Request, session: Session) -> Response:
    context = app_context(request)
    mode = (await request.form()).get("mode")
    reconciler = context.reconciler
    if not isinstance(reconciler, Reconciler):
        return await _page(request, session, 503, "Reconciliation is not running in this process.")
    if not isinstance(mode, str) or mode not in MODES:
        return await _page(request, session, 422, f"Mode must be one of {', '.join(MODES)}.")
    record = await reconciler.start(mode, "operator", requested_by=session.who)
    if record is None:
        return await _page(
            request, session, 409, "A reconciliation run is in progress; one runs at a time."
        )
    async with context.engine.begin() as connection:
        await record_action(
            connection,
            actor=session.who,
            action="reconciliation.run",
            target=f"run:{record.id}",
            detail={"mode": mode},
        )
    return back_to("/admin/reconciliation", "reconciling", run=record.id, n=record.id)


@signed_in
async def report_csv(request: Request, session: Session) -> Response:
    """The same streamed CSV as the API's report.csv, for a signed-in operator."""
    context = app_context(request)
    run_id = _number(request.path_params["run_id"])
    async with context.engine.connect() as connection:
        run = await runs.get_run(connection, run_id) if run_id is not None else None
    if run is None:
        return await render(request, session, "missing.html", 404, what="such a run")
    return csv_download(context.engine, run.id)
