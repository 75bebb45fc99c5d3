"""Where HubSpot webhooks enter: read the raw body, verify the signature, store, answer.

The order matters and each step refuses before the next runs: secret configured (503) →
signature headers present and the v3 timestamp fresh (401, before a byte of the body is read)
→ the body, at most 1 MiB, in time (413, 408; app/api/limits.py) → signature over the raw
bytes (401, nothing stored) → JSON shape (400) → one database
transaction that stores every event and queues its work — shared with the deliveries arriving
at the same moment (group commit, app/sync/intake/writer.py) → 200 after the commit (a
database failure is a 503, so HubSpot retries) → wake the worker. No HubSpot call happens here.
Also the operators' view of stored events, and their re-run.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.api.deps import app_context, json_body, require_api_token
from app.api.errors import ApiError
from app.api.metrics import counted_delivery
from app.api.query import query_choice, query_int, query_limit
from app.api.webhook_signatures import precheck_headers, verify_request
from app.context import AppContext
from app.metrics.instruments import observe_webhook_events
from app.store.queue import QueueRepository
from app.store.webhook_events import STATUSES, list_events
from app.sync.core.events import (
    DeliveryError,
    IncomingEvent,
    bound_by_receipt,
    parse_delivery,
)
from app.sync.intake.routing import (
    REPROCESS_LIMIT,
    DeliverySummary,
    accept_delivery,
    reprocess_events,
)
from app.sync.intake.writer import IntakeUnavailableError, IntakeWriter

log = logging.getLogger("hubsync.webhooks")

DELIVERY_PATHS = ("/v1/webhooks/hubspot", "/v1/webhooks/hubspot/company")
MAX_EVENT_ID = 2**63 - 1  # the ids are BIGINT
# HubSpot gives up after 5 s; answer 503 before that rather than time out silently.
INTAKE_TIMEOUT_SECONDS = 4.0
DATABASE_DOWN = (DBAPIError, PoolTimeoutError, OSError, TimeoutError, IntakeUnavailableError)
# The delivery's answer, seven counts, written as JSONResponse would write it (compact) but
# without a trip through json.dumps' encoder for every delivery.
_SUMMARY_JSON = (
    "{" + ",".join(f'"{name}":%d' for name in DeliverySummary().to_json()) + "}"
).encode()


def summary_response(summary: DeliverySummary) -> Response:
    return Response(
        _SUMMARY_JSON % tuple(summary.to_json().values()), media_type="application/json"
    )


def queue_of(context: AppContext) -> QueueRepository:
    queue = context.queue
    return queue if isinstance(queue, QueueRepository) else QueueRepository(context.engine)


async def store_delivery(context: AppContext, incoming: list[IncomingEvent]) -> DeliverySummary:
    """Through the lifespan's group-commit writer (app/sync/intake/writer.py); in its own
    transaction when the app runs without one."""
    writer = context.intake
    if isinstance(writer, IntakeWriter):
        return await writer.submit(incoming)
    async with context.engine.begin() as connection:
        return await accept_delivery(
            connection, incoming, queue=queue_of(context), app_id=context.settings.hubspot_app_id
        )


def wake_worker(context: AppContext) -> None:
    worker = context.worker
    if worker is not None:
        worker.wake()


async def receive_hubspot(request: Request) -> Response:
    received_at = datetime.now(UTC)  # bounds each event's occurredAt (bound_by_receipt)
    context = app_context(request)
    if context.webhook_secret is None:
        raise ApiError(503, "webhook secret not configured (set HUBSPOT_CLIENT_SECRET)")
    precheck_headers(request, accepted=context.settings.hubspot_webhook_signature_versions)
    body = await request.body()  # bounded in size and time by RequestLimits (app/api/limits.py)
    verify_request(
        request,
        body,
        context.webhook_secret.reveal(),
        accepted=context.settings.hubspot_webhook_signature_versions,
        public_url=context.settings.public_url,
    )
    try:
        incoming = bound_by_receipt(parse_delivery(body), received_at)
    except DeliveryError as exc:
        raise ApiError(400, str(exc)) from None
    try:
        async with asyncio.timeout(INTAKE_TIMEOUT_SECONDS):
            summary = await store_delivery(context, incoming)
    except DATABASE_DOWN as exc:
        log.warning("webhook delivery not stored: database unavailable (%s)", type(exc).__name__)
        raise ApiError(
            503, "the database is unavailable; the delivery was not stored, retry later"
        ) from None
    observe_webhook_events(summary.duplicates, summary.queued, summary.ignored, summary.processed)
    if summary.job_ids:
        wake_worker(context)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("webhook delivery stored", extra={"webhook": summary.to_json()})
    return summary_response(summary)


def _status_param(value: Any) -> str | None:
    if value is None:
        return None
    if value not in STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(STATUSES)}")
    return str(value)


async def list_webhook_events(request: Request) -> JSONResponse:
    require_api_token(request)
    context = app_context(request)
    status = query_choice(request, "status", STATUSES)
    limit = query_limit(request, default=50, high=500)
    before = query_int(request, "before", default=None)
    async with context.engine.connect() as connection:
        rows = await list_events(connection, status=status, limit=limit, before_id=before)
    return JSONResponse(
        {
            "events": [row.to_json() for row in rows],
            "next_before": rows[-1].id if len(rows) == limit else None,
        }
    )


async def reprocess_webhook_events(request: Request) -> JSONResponse:
    caller = require_api_token(request)
    context = app_context(request)
    body = await json_body(request, required=True)
    if not isinstance(body, dict):
        raise ApiError(400, 'expected {"event_ids": [...]} or {"status": "failed"}')
    if any(body.get(name, "") is None for name in ("event_ids", "status")):
        raise ApiError(400, "event_ids and status must not be null; leave out the one not used")
    ids = body.get("event_ids")
    status = _status_param(body.get("status"))
    if ids is None and status is None:
        raise ApiError(400, 'give "event_ids" (a list of ids) or "status" (e.g. "failed")')
    if ids is not None and (
        not isinstance(ids, list)
        or not all(
            isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= MAX_EVENT_ID for i in ids
        )
        or len(ids) > REPROCESS_LIMIT
    ):
        raise ApiError(
            400,
            f"event_ids must be a list of at most {REPROCESS_LIMIT} integer ids from 1 to "
            f"{MAX_EVENT_ID}",
        )
    async with context.engine.begin() as connection:
        summary = await reprocess_events(
            connection,
            queue=queue_of(context),
            app_id=context.settings.hubspot_app_id,
            event_ids=ids,
            status=status,
        )
    if summary.job_ids:
        wake_worker(context)
    log.info("webhook events reprocessed by %s", caller, extra={"webhook": summary.to_json()})
    return JSONResponse(
        {
            "reprocessed": summary.received,
            "queued": summary.queued,
            "ignored": summary.ignored,
            "processed": summary.processed,
            "job_ids": summary.job_ids,
        }
    )


routes: list[BaseRoute] = [
    *(Route(path, counted_delivery(receive_hubspot), methods=["POST"]) for path in DELIVERY_PATHS),
    Route("/v1/webhooks/events", list_webhook_events, methods=["GET"]),
    Route("/v1/webhooks/events/reprocess", reprocess_webhook_events, methods=["POST"]),
]
