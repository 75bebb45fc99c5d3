"""The operator's API — the JSON twin of every console page: the dashboard, customer search,
pausing a direction, conflicts and their resolution, failed jobs and their re-run, and the
audit trail. Bearer token as on the rest of `/v1/sync/*`; every action is audited under the
token's label."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.api.deps import app_context, json_body, require_api_token
from app.api.errors import ApiError
from app.api.query import (
    query_choice,
    query_int,
    query_limit,
    query_text,
    query_uuid,
    refuse_control_characters,
)
from app.api.sync_jobs import job_document, queue_of
from app.store.admin_audit import recent_actions
from app.store.console import FailedFilter, failed_jobs, list_conflicts
from app.store.pauses import DIRECTIONS, LABELS, UnknownDirectionError, paused_directions
from app.sync.operator import actions as operations
from app.sync.operator.overview import read_dashboard
from app.sync.operator.resolution import (
    ResolutionError,
    ResolveServices,
    parse_choice,
    resolve_conflict,
)
from app.sync.schedule.runtime import wake_worker
from app.warp.connector import SqlWarpConnector
from app.warp.search import search_customers

MAX_PAGE = 200
MAX_RETRY_IDS = 10_000
FILTERS = ("kind", "source", "text")
RESOLUTION_STATUS = {
    "not_found": 404,
    "not_open": 409,
    "paused": 409,
    "customer_deleted": 409,
    "invalid": 422,
}


async def get_dashboard(request: Request) -> JSONResponse:
    require_api_token(request)
    dashboard = await read_dashboard(app_context(request))
    return JSONResponse(dashboard.to_json())


async def list_customers(request: Request) -> JSONResponse:
    """GET /v1/sync/customers?q=&after_id= — by BAN or name, keyed by id."""
    require_api_token(request)
    context = app_context(request)
    if not isinstance(context.warp, SqlWarpConnector):
        raise ApiError(503, "customer search needs WARP's customers table")
    found = await search_customers(
        context.warp,
        query_text(request, "q") or "",
        after_id=query_uuid(request, "after_id"),
        limit=page_size(request),
    )
    return JSONResponse(
        {
            "customers": [
                {
                    "id": c["id"],
                    "ban": c["ban"],
                    "company_name": c["company_name"],
                    "status": c["status"],
                    "hubspot_company_id": c["external_ids"].get("hubspot_company_id"),
                }
                for c in found
            ],
            "next_after_id": found[-1]["id"] if found else None,
        }
    )


async def get_directions(request: Request) -> JSONResponse:
    require_api_token(request)
    async with app_context(request).engine.connect() as connection:
        paused = await paused_directions(connection)
    return JSONResponse(directions_document(paused))


async def pause_direction(request: Request) -> JSONResponse:
    caller = require_api_token(request)
    context = app_context(request)
    direction = _direction(request)
    body = await json_body(request)
    if body is not None and not isinstance(body, dict):
        raise ApiError(422, 'the body must be a JSON object like {"reason": "…"}')
    reason = body.get("reason") if body else None
    if body and "reason" in body and not isinstance(reason, str):
        raise ApiError(422, "reason must be a string", extra={"field": "reason"})
    changed = await operations.pause(context.engine, direction, by=caller, reason=reason)
    async with context.engine.connect() as connection:
        paused = await paused_directions(connection)
    return JSONResponse({"changed": changed, **directions_document(paused)})


async def resume_direction(request: Request) -> JSONResponse:
    caller = require_api_token(request)
    context = app_context(request)
    changed = await operations.resume(context.engine, _direction(request), by=caller)
    wake_worker(context)  # the jobs that waited are due now
    async with context.engine.connect() as connection:
        paused = await paused_directions(connection)
    return JSONResponse({"changed": changed, **directions_document(paused)})


async def get_conflicts(request: Request) -> JSONResponse:
    require_api_token(request)
    state = query_choice(request, "state", ("open", "resolved"), default="open")
    assert state is not None  # noqa: S101 -- a default is given
    async with app_context(request).engine.connect() as connection:
        rows = await list_conflicts(
            connection, state=state, before_id=before_id(request), limit=page_size(request)
        )
    return JSONResponse(
        {
            "conflicts": [row.to_json() for row in rows],
            "next_before_id": rows[-1].id if rows else None,
        }
    )


async def post_resolve(request: Request) -> JSONResponse:
    """POST /v1/sync/conflicts/{conflict_id}/resolve  {"choice": "WARP"|"HUBSPOT"|"VALUE",
    "value": "..."} — written to both sides through the engine."""
    caller = require_api_token(request)
    context = app_context(request)
    body = await json_body(request, required=True)
    if not isinstance(body, dict):
        raise ApiError(422, 'expected {"choice": "WARP"|"HUBSPOT"|"VALUE", "value": ...}')
    value = body.get("value")
    if value is not None and not isinstance(value, str):
        raise ApiError(422, "value must be a string", extra={"field": "value"})
    try:
        resolution = await resolve_conflict(
            ResolveServices.for_context(context),
            _int_param(request.path_params["conflict_id"], "conflict_id"),
            parse_choice(body.get("choice")),
            value,
            by=caller,
        )
    except ResolutionError as exc:
        status = RESOLUTION_STATUS[exc.reason]
        # A 409 names why in `error`: `not_open` (another resolution won, or it was already
        # closed), `customer_deleted` (closed as moot: the customer is gone from WARP) or
        # `paused` (a typed value while HubSpot -> WARP is paused).
        raise ApiError(status, str(exc), code=exc.reason if status == 409 else None) from None
    if resolution.outcome is None:
        wake_worker(context)
    return JSONResponse(resolution.to_json())


async def get_failed(request: Request) -> JSONResponse:
    require_api_token(request)
    where = FailedFilter(
        kind=query_text(request, "kind"),
        source=query_text(request, "source"),
        text=query_text(request, "text"),
    )
    async with app_context(request).engine.connect() as connection:
        jobs = await failed_jobs(
            connection, where, before_id=before_id(request), limit=page_size(request)
        )
    return JSONResponse(
        {
            "jobs": [job_document(job) for job in jobs],
            "filter": where.to_json(),
            "next_before_id": jobs[-1].id if jobs else None,
        }
    )


async def post_retry_failed(request: Request) -> JSONResponse:
    """POST /v1/sync/failed/retry  {"job_ids": [...]} or {"filter": {"kind", "source", "text"}}"""
    caller = require_api_token(request)
    context = app_context(request)
    body = await json_body(request, required=True)
    if not isinstance(body, dict) or ("job_ids" in body) == ("filter" in body):
        raise ApiError(422, 'give either "job_ids" (a list of ids) or "filter" (an object)')
    ids = body.get("job_ids")
    if ids is not None and (
        not isinstance(ids, list)
        or not all(
            isinstance(i, int) and not isinstance(i, bool) and 1 <= i < 2**63 for i in ids
        )  # the ids are BIGINT: past 64 bits the database would refuse the query (a 500)
        or len(ids) > MAX_RETRY_IDS
    ):
        raise ApiError(
            422,
            f"job_ids: expected at most {MAX_RETRY_IDS} integer ids from 1 to 2^63-1",
            extra={"field": "job_ids"},
        )
    matching = None
    if ids is None:
        raw = body["filter"]
        if not isinstance(raw, dict) or not all(
            k in FILTERS and (v is None or isinstance(v, str)) for k, v in raw.items()
        ):
            raise ApiError(
                422, "filter: expected string kind, source or text", extra={"field": "filter"}
            )
        matching = FailedFilter(
            *(refuse_control_characters(f"filter.{name}", raw.get(name)) for name in FILTERS)
        )
    requeued = await operations.retry_failed_jobs(
        queue_of(context), by=caller, job_ids=ids, matching=matching
    )
    wake_worker(context)
    return JSONResponse({"requeued": requeued})


async def get_audit(request: Request) -> JSONResponse:
    require_api_token(request)
    async with app_context(request).engine.connect() as connection:
        entries = await recent_actions(
            connection, before_id=before_id(request), limit=page_size(request)
        )
    return JSONResponse(
        {
            "actions": [entry.to_json() for entry in entries],
            "next_before_id": entries[-1].id if entries else None,
        }
    )


# -- shared with the console --------------------------------------------------------------


def directions_document(paused: dict[str, Any]) -> dict[str, Any]:
    return {
        "directions": [
            {
                "direction": name,
                "label": LABELS[name],
                "paused": name in paused,
                **({"pause": paused[name].to_json()} if name in paused else {}),
            }
            for name in DIRECTIONS
        ]
    }


def page_size(request: Request) -> int:
    return query_limit(request, default=50, high=MAX_PAGE)


def before_id(request: Request) -> int | None:
    return query_int(request, "before_id", default=None)


def _int_param(raw: str, name: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(422, f"{name}: expected a positive whole number", extra={"field": name})
    return int(raw)


def _direction(request: Request) -> str:
    direction = request.path_params["direction"]
    if direction not in DIRECTIONS:
        raise ApiError(404, str(UnknownDirectionError(direction)))
    return str(direction)


routes: list[BaseRoute] = [
    Route("/v1/sync/dashboard", get_dashboard, methods=["GET"]),
    Route("/v1/sync/customers", list_customers, methods=["GET"]),
    Route("/v1/sync/directions", get_directions, methods=["GET"]),
    Route("/v1/sync/directions/{direction}/pause", pause_direction, methods=["POST"]),
    Route("/v1/sync/directions/{direction}/resume", resume_direction, methods=["POST"]),
    Route("/v1/sync/conflicts", get_conflicts, methods=["GET"]),
    Route("/v1/sync/conflicts/{conflict_id}/resolve", post_resolve, methods=["POST"]),
    Route("/v1/sync/failed", get_failed, methods=["GET"]),
    Route("/v1/sync/failed/retry", post_retry_failed, methods=["POST"]),
    Route("/v1/sync/audit", get_audit, methods=["GET"]),
]
