"""One customer at a time: sync it now (the gateway's immediate path) and look at its state."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.api.deps import app_context, json_body, require_api_token
from app.api.errors import ApiError
from app.api.idempotency import Answer, answer_idempotently
from app.api.paths import CUSTOMER_ID
from app.api.sync_jobs import idempotency_store, job_document, queue_of
from app.context import AppContext
from app.store import console, sync_state
from app.store.pauses import OUTBOUND, paused_directions
from app.store.queue import EntityBusyError, QueueRepository
from app.sync.core.jobs import (
    ClaimedJob,
    EntityType,
    JobDirection,
    JobHandler,
    JobOutcome,
    JobSource,
    OutcomeStatus,
)
from app.sync.worker.lease import LeaseLostError, holding_lease
from app.warp.connector import canonical_id

# What the caller learns from the status code alone.
STATUS_CODES = {OutcomeStatus.DONE: 200, OutcomeStatus.RETRY: 202, OutcomeStatus.FAILED: 422}


def _customer_key(request: Request) -> str:
    raw = request.path_params["customer_id"]
    try:
        return canonical_id(raw)
    except ValueError:
        raise ApiError(404, f"customer {raw} does not exist in WARP") from None


async def sync_customer_now(request: Request) -> Response:
    """POST /v1/sync/customers/{customer_id}/to-hubspot — sync now and answer with the outcome:
    200 done, 202 not yet (a transient error, or not finished within HUBSYNC_SYNC_NOW_TIMEOUT:
    the job stays queued and retries), 422 failed for good (the reason is in `error`), 409
    while another worker is syncing this customer. The lease is heartbeated like a worker's."""
    caller = require_api_token(request)
    context = app_context(request)
    queue = queue_of(context)
    handler: JobHandler | None = context.job_handler
    if handler is None:
        raise ApiError(503, "the sync engine is not running in this process")
    body = await request.body()
    if await json_body(request) not in (None, {}):
        raise ApiError(422, "this route takes no body", extra={"field": "body"})
    key = _customer_key(request)

    async def produce(_answer: Answer) -> tuple[int, dict[str, Any]]:
        if not await context.warp.existing_ids([key]):
            raise ApiError(404, f"customer {key} does not exist in WARP")
        if paused := await _outbound_paused(context, key):
            return 202, paused
        worker_id = f"api:{uuid.uuid4().hex[:12]}"
        try:
            job = await queue.claim_entity(
                EntityType.CUSTOMER,
                key,
                worker_id=worker_id,
                lease_seconds=context.settings.lease_seconds,
                source=JobSource.API,
                direction=JobDirection.TO_HUBSPOT,
            )
        except EntityBusyError as exc:
            raise ApiError(
                409,
                f"customer {key} is being synced right now (job {exc.job_id}); "
                "retry shortly or queue it",
                code="busy",
            ) from None
        outcome = await _run_bounded(context, queue, handler, job, worker_id)
        payload = {
            "job_id": job.id,
            "customer_id": key,
            "status": outcome.status.value,
            "error": outcome.error,
            **(outcome.result or {}),
        }
        return STATUS_CODES[outcome.status], payload

    return await answer_idempotently(
        request,
        idempotency_store(context),
        caller=caller,
        route="/v1/sync/customers/{customer_id}/to-hubspot",
        body=body,
        produce=produce,
    )


async def _outbound_paused(context: AppContext, key: str) -> dict[str, Any] | None:
    """While an operator has paused WARP -> HubSpot, the customer is queued (it syncs on
    resume) instead of being synced now."""
    async with context.engine.begin() as connection:
        if OUTBOUND not in await paused_directions(connection):
            return None
        queued = await queue_of(context).enqueue(
            connection,
            EntityType.CUSTOMER,
            key,
            priority=1,
            source=JobSource.API,
            direction=JobDirection.TO_HUBSPOT,
        )
    return {
        "job_id": queued.job_id,
        "customer_id": key,
        "status": "queued",
        "error": "WARP -> HubSpot is paused by an operator; the job waits for the resume",
    }


# Immediate syncs still running after their request answered, kept so they are not collected.
_BACKGROUND: set[asyncio.Task[JobOutcome]] = set()


async def _run_bounded(
    context: AppContext, queue: QueueRepository, handler: JobHandler, job: ClaimedJob, holder: str
) -> JobOutcome:
    """Run the job as the worker would — its lease renewed by the same heartbeat — and wait
    for it at most HUBSYNC_SYNC_NOW_TIMEOUT. A sync still running then is left to finish in
    the background (never cut off halfway through its writes) and the caller gets a 202."""
    lease = context.settings.lease_seconds

    async def run() -> JobOutcome:
        try:
            [outcome] = await holding_lease(queue, holder, [job.id], lease, handler([job]))
        except LeaseLostError as exc:
            outcome = JobOutcome(
                job.id, OutcomeStatus.RETRY, error=str(exc), error_kind="lease_lost"
            )
        except BaseException as exc:
            failure = JobOutcome(
                job.id, OutcomeStatus.RETRY, error=f"{type(exc).__name__}", error_kind="internal"
            )
            await asyncio.shield(queue.complete(holder, [failure], claims={job.id: job.claim}))
            raise
        await queue.complete(holder, [outcome], claims={job.id: job.claim})
        return outcome

    task = asyncio.create_task(run(), name=f"hubsync-sync-now {job.id}")
    limit = context.settings.sync_now_timeout_seconds
    done, _ = await asyncio.wait({task}, timeout=limit)
    if task in done:
        return task.result()
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    message = f"not finished within {limit:g} s; it goes on in the background, see the job"
    return JobOutcome(job.id, OutcomeStatus.RETRY, error=message, error_kind="timeout")


async def get_customer(request: Request) -> Response:
    """GET /v1/sync/customers/{customer_id} — link, field state, conflicts, recent outcomes."""
    require_api_token(request)
    context = app_context(request)
    key = _customer_key(request)
    customers = await context.warp.fetch_customers([key])
    async with context.engine.connect() as connection:
        links = await sync_state.links_by_customer(connection, [key])
        memory = (await sync_state.field_memory(connection, [key])).get(key, {})
        log = await console.customer_history(connection, key, limit=10)
        conflicts = await sync_state.open_conflicts_of(connection, key)
    if key not in customers and not links:
        raise ApiError(404, f"customer {key} does not exist in WARP")
    link = links.get(key)
    jobs = await queue_of(context).jobs_for(EntityType.CUSTOMER, key, limit=5)
    return JSONResponse(
        {
            "customer_id": key,
            "in_warp": key in customers,
            "link": None
            if link is None
            else {
                "hubspot_company_id": link.hubspot_company_id,
                "warp_ban": link.warp_ban,
                "state": link.state,
            },
            "fields": {
                name: {
                    "warp_value": seen.warp_value,
                    "hubspot_value": seen.hubspot_value,
                    "base_value": seen.base_value,
                    "warp_changed_at": _iso(seen.warp_changed_at),
                    "hubspot_changed_at": _iso(seen.hubspot_changed_at),
                    "synced_at": _iso(seen.synced_at),
                }
                for name, seen in sorted(memory.items())
            },
            "open_conflicts": [
                {
                    "id": row.id,
                    "field": row.field,
                    "warp_value": row.warp_value,
                    "hubspot_value": row.hubspot_value,
                    "base_value": row.base_value,
                    "reason": row.reason,
                    "detected_at": _iso(row.detected_at),
                }
                for row in conflicts
            ],
            "recent_syncs": log,
            "jobs": [job_document(job) for job in jobs],
        }
    )


def _iso(moment: datetime | None) -> str | None:
    moment = sync_state.as_utc(moment)
    return moment.isoformat() if moment is not None else None


routes: list[BaseRoute] = [
    Route(f"/v1/sync/customers/{CUSTOMER_ID}/to-hubspot", sync_customer_now, methods=["POST"]),
    Route(f"/v1/sync/customers/{CUSTOMER_ID}", get_customer, methods=["GET"]),
]
