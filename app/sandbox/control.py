"""The sandbox's own control API under `/_sandbox`: what a test or a demo needs to steer it.

Edit a company as a person in the CRM would, restore an archived one, inject faults, read the
statistics, reset, and push or inspect webhook deliveries. None of it counts against limits.
"""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.sandbox.bulk_seed import seed_rows
from app.sandbox.company_inputs import input_properties, properties_to_update
from app.sandbox.company_view import view_company
from app.sandbox.errors import bad_request
from app.sandbox.faults import Faults
from app.sandbox.fields import bool_param
from app.sandbox.request_io import json_body, sandbox_of
from app.sandbox.store import ALL

PREFIX = "/_sandbox"
RECENT = 100
MAX_SEED = 10_000


def _user_id(body: object) -> int:
    raw = body.get("userId", 1) if isinstance(body, dict) else 1
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise bad_request(f"userId must be an integer, got {raw!r}") from None


async def edit_company(request: Request) -> Response:
    """Body: {"properties": {...}, "userId": 7}; webhooks say CRM_UI and userId:7. Without
    `properties`, HubSpot's 400, as its own PATCH answers. `?idProperty=warp_ban` finds the
    company by that unique property, as HubSpot's PATCH does."""
    body = await json_body(request)
    sandbox = sandbox_of(request)
    company = sandbox.edit_as_user(
        request.path_params["company_id"],
        properties_to_update(body),
        user_id=_user_id(body),
        id_property=sandbox.companies.update_key(request.query_params.get("idProperty")),
    )
    return JSONResponse(company)


async def restore_company(request: Request) -> Response:
    body = await json_body(request)
    sandbox = sandbox_of(request)
    return JSONResponse(sandbox.restore(request.path_params["company_id"], _user_id(body)))


async def list_all_companies(request: Request) -> Response:
    sandbox = sandbox_of(request)
    archived = bool_param(request, "archived")
    results = [c.to_json(ALL) for c in sandbox.companies.all(archived=archived)]
    return JSONResponse({"total": len(results), "results": results})


async def seed_companies(request: Request) -> Response:
    """Body: {"companies": [{"properties": {...}}, ...], "userId": 1}, at most 10,000: create
    them as a person would, without counting against the limits (benchmarks' set-up)."""
    body = await json_body(request)
    items = body.get("companies") if isinstance(body, dict) else None
    if not isinstance(items, list) or len(items) > MAX_SEED:
        raise bad_request(f"companies must be a list of at most {MAX_SEED}")
    sandbox = sandbox_of(request)
    source = sandbox.user_source(_user_id(body))
    ids = [
        sandbox.companies.create(input_properties(item, required=False), source).id
        for item in items
    ]
    return JSONResponse({"ids": ids}, status_code=201)


async def seed_generated(request: Request) -> Response:
    """Body: a spec of up to 2,000,000 companies made here (`app.sandbox.bulk_seed`):
    {"count": N, "properties": {"name": "Company {n}", ...}, "overrides": {...}}. Answers
    {"first": id of company 0, "count": N}; company n has id first + n."""
    body = await json_body(request)
    sandbox = sandbox_of(request)
    columns, rows = seed_rows(sandbox.properties, body, sandbox.user_source(_user_id(body)))
    ids = sandbox.companies.seed_rows(columns, rows)
    return JSONResponse({"first": str(ids.start), "count": len(ids)}, status_code=201)


async def stats(request: Request) -> Response:
    return JSONResponse(sandbox_of(request).stats())


async def list_requests(request: Request) -> Response:
    """The API requests the sandbox saw (the newest it keeps), each with when it arrived and
    when its answer started, on the sandbox's monotonic clock (`now` is that clock as it
    answers, so a caller can put the times on its own): HubSpot's view of a client's pacing.
    `?since=<seconds on that clock>` (default: all kept)."""
    raw = request.query_params.get("since", "")
    try:
        since = float(raw) if raw else float("-inf")
    except ValueError:
        raise bad_request(f"since must be a number of seconds, got {raw!r}") from None
    if math.isnan(since):
        raise bad_request("since must be a number of seconds, got NaN")
    log = sandbox_of(request).log
    records = log.since(since)
    return JSONResponse({"now": log.now(), "requests": [r.to_json() for r in records]})


async def reset_peaks(request: Request) -> Response:
    """The most requests (and searches) in any window count afresh from now: a benchmark's
    phases each get their own peak."""
    sandbox_of(request).log.reset_peaks()
    return Response(status_code=204)


async def get_faults(request: Request) -> Response:
    return JSONResponse(sandbox_of(request).faults.faults.to_json())


async def put_faults(request: Request) -> Response:
    try:
        faults = Faults.from_json(await json_body(request))
    except (TypeError, ValueError) as exc:
        raise bad_request(f"Invalid faults: {exc}") from None
    return JSONResponse(sandbox_of(request).set_faults(faults).to_json())


async def reset(request: Request) -> Response:
    sandbox_of(request).reset(keep_properties=bool_param(request, "keep_properties"))
    return Response(status_code=204)


async def flush_webhooks(request: Request) -> Response:
    delivered = await sandbox_of(request).flush_webhooks()
    return JSONResponse({"delivered": delivered})


async def list_webhooks(request: Request) -> Response:
    sandbox = sandbox_of(request)
    hooks = sandbox.webhooks
    counts = hooks.counts
    return JSONResponse(
        {
            "target": sandbox.config.webhook_url,
            "pending": hooks.pending,
            "retrying": hooks.retrying,
            "batchesDelivered": counts.batches_delivered,
            "eventsDelivered": counts.events_delivered,
            "attemptsFailed": counts.attempts_failed,
            "batchesAbandoned": counts.batches_abandoned,
            "deliveries": [d.to_json() for d in list(hooks.deliveries)[-RECENT:]],
            "events": list(hooks.events)[-RECENT:],
        }
    )


def control_routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/companies", list_all_companies, methods=["GET"]),
        Route(f"{PREFIX}/companies", seed_companies, methods=["POST"]),
        Route(f"{PREFIX}/seed", seed_generated, methods=["POST"]),
        Route(f"{PREFIX}/companies/{{company_id}}", edit_company, methods=["PATCH"]),
        Route(f"{PREFIX}/companies/{{company_id}}/restore", restore_company, methods=["POST"]),
        Route(f"{PREFIX}/companies/{{company_id}}/view", view_company, methods=["GET"]),
        Route(f"{PREFIX}/stats", stats, methods=["GET"]),
        Route(f"{PREFIX}/requests", list_requests, methods=["GET"]),
        Route(f"{PREFIX}/stats/peaks/reset", reset_peaks, methods=["POST"]),
        Route(f"{PREFIX}/faults", get_faults, methods=["GET"]),
        Route(f"{PREFIX}/faults", put_faults, methods=["PUT"]),
        Route(f"{PREFIX}/reset", reset, methods=["POST"]),
        Route(f"{PREFIX}/webhooks/flush", flush_webhooks, methods=["POST"]),
        Route(f"{PREFIX}/webhooks", list_webhooks, methods=["GET"]),
    ]
