"""The console's reconciliation page: runs, a run's categories and items (keyset paged), its
progress while it runs (pages read on each side, items so far), drift per category over the
last runs as a chart, its CSV report behind the session, and "run now" in dry-run or fix
mode (fix only after a confirmation step) — over app/store/reconciliation.py and the
Reconciler the API uses."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from app.admin.access import Session
from app.admin.drift_chart import build_drift_chart
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
CHART_RUNS = 30
FIX = "fix"


def duration(run: runs.RunRecord, now: datetime) -> str | None:
    """ "3 min 12 s": how long the run took, or has taken so far."""
    if run.started_at is None:
        return None
    seconds = int(((run.finished_at or now) - run.started_at).total_seconds())
    seconds = max(seconds, 0)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds} s"


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
        recent = await runs.list_runs(connection, limit=CHART_RUNS)
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
        took=duration(run, datetime.now(UTC)) if run is not None else None,
        reported=sum(run.counts.get(c, 0) for c in REPORTED) if run is not None else 0,
        judged=sum(run.counts.values()) if run is not None else 0,
        drift=build_drift_chart(recent, REPORTED),
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
    form = await request.form()
    mode = form.get("mode")
    reconciler = context.reconciler
    if not isinstance(reconciler, Reconciler):
        return await _page(request, session, 503, "Reconciliation is not running in this process.")
    if not isinstance(mode, str) or mode not in MODES:
        return await _page(request, session, 422, f"Mode must be one of {', '.join(MODES)}.")
    if mode == FIX and form.get("confirm") != "yes":
        return await _confirm_fix(request, session)
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
    return back_to("/admin/reconciliation", run=record.id)


async def _confirm_fix(request: Request, session: Session) -> Response:
    """A fix run queues jobs that write to both sides: say what the last finished run
    found, and ask once more."""
    async with app_context(request).engine.connect() as connection:
        if await runs.running_run(connection) is not None:
            busy = True
        else:
            busy = False
            done = [r for r in await runs.list_runs(connection, limit=10) if r.status == "done"]
    if busy:
        return await _page(
            request, session, 409, "A reconciliation run is in progress; one runs at a time."
        )
    last = done[0] if done else None
    return await render(
        request,
        session,
        "reconciliation_confirm.html",
        last=last,
        reported=sum(last.counts.get(c, 0) for c in REPORTED) if last is not None else None,
    )


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
