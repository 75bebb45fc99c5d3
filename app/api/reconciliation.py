"""The reconciliation API: start a run, list runs, read one, page its items, download its
report (CSV or JSON, streamed). Every route needs a bearer token from HUBSYNC_API_TOKENS."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from app.api.deps import app_context, json_body, require_api_token
from app.api.errors import ApiError
from app.api.query import query_choice, query_int, query_limit
from app.context import AppContext
from app.store import reconciliation as runs
from app.store.reconciliation import RunRecord
from app.sync.reconcile.categories import REPORTED
from app.sync.reconcile.full_run import MODES
from app.sync.reconcile.report import csv_text, json_text
from app.sync.reconcile.service import Reconciler

MAX_PAGE = 1000


def reconciler_of(context: AppContext) -> Reconciler:
    reconciler: Reconciler | None = context.reconciler
    if reconciler is None:
        raise ApiError(503, "reconciliation is not running in this process")
    return reconciler


async def start_run(request: Request) -> Response:
    """POST /v1/reconciliation/runs  body: {"mode": "dry_run" | "fix"}"""
    caller = require_api_token(request)
    context = app_context(request)
    body = await json_body(request, required=True)
    if not isinstance(body, dict) or set(body) - {"mode"}:
        raise ApiError(422, 'expected a JSON object {"mode": "dry_run" | "fix"}')
    mode = body.get("mode")
    if mode not in MODES:
        raise ApiError(422, f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    record = await reconciler_of(context).start(mode, "api", requested_by=caller)
    if record is None:
        async with context.engine.connect() as connection:
            running = await runs.running_run(connection)
        raise ApiError(
            409,
            "a reconciliation run is in progress; one runs at a time",
            extra={"running_run_id": running.id if running else None},
        )
    return JSONResponse(record.to_json(), status_code=202)


async def list_runs(request: Request) -> Response:
    """GET /v1/reconciliation/runs?limit=50&before=<id>"""
    require_api_token(request)
    limit = query_limit(request, default=50, high=MAX_PAGE)
    before = query_int(request, "before", default=None)
    async with app_context(request).engine.connect() as connection:
        records = await runs.list_runs(connection, limit=limit, before_id=before)
    next_before = records[-1].id if len(records) == limit else None
    return JSONResponse({"runs": [r.to_json() for r in records], "next_before": next_before})


async def get_run(request: Request) -> Response:
    require_api_token(request)
    return JSONResponse((await _run(request)).to_json())


async def list_items(request: Request) -> Response:
    """GET /v1/reconciliation/runs/{run_id}/items?category=drift&after=<id>&limit=100"""
    require_api_token(request)
    run = await _run(request)
    category = query_choice(request, "category", REPORTED)
    after = query_int(request, "after", default=0, low=0)
    limit = query_limit(request, default=100, high=MAX_PAGE)
    async with app_context(request).engine.connect() as connection:
        items = await runs.items_page(
            connection, run.id, category=category, after_id=after or 0, limit=limit
        )
    next_after = items[-1]["id"] if len(items) == limit else None
    return JSONResponse({"run_id": run.id, "items": items, "next_after": next_after})


async def report_csv(request: Request) -> Response:
    require_api_token(request)
    return csv_download(app_context(request).engine, (await _run(request)).id)


def csv_download(engine: AsyncEngine, run_id: int) -> StreamingResponse:
    """A run's CSV report, streamed a chunk of items at a time (also the console's download)."""
    return StreamingResponse(
        csv_text(run_id, runs.iter_items(engine, run_id)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="reconciliation-{run_id}.csv"'},
    )


async def report_json(request: Request) -> Response:
    require_api_token(request)
    run = await _run(request)
    chunks = runs.iter_items(app_context(request).engine, run.id)
    return StreamingResponse(json_text(run, chunks), media_type="application/json")


async def _run(request: Request) -> RunRecord:
    raw = request.path_params["run_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, f"no reconciliation run {raw}")
    async with app_context(request).engine.connect() as connection:
        record = await runs.get_run(connection, int(raw))
    if record is None:
        raise ApiError(404, f"no reconciliation run {raw}")
    return record


routes: list[BaseRoute] = [
    Route("/v1/reconciliation/runs", start_run, methods=["POST"]),
    Route("/v1/reconciliation/runs", list_runs, methods=["GET"]),
    Route("/v1/reconciliation/runs/{run_id}", get_run, methods=["GET"]),
    Route("/v1/reconciliation/runs/{run_id}/items", list_items, methods=["GET"]),
    Route("/v1/reconciliation/runs/{run_id}/report.csv", report_csv, methods=["GET"]),
    Route("/v1/reconciliation/runs/{run_id}/report.json", report_json, methods=["GET"]),
]
