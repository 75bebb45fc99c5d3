"""The sync job API (the WARP gateway's entry point): queue customers, process, look at jobs.

Every route needs a bearer token from HUBSYNC_API_TOKENS. Queueing answers 202 only after the
job's transaction committed, then wakes this replica's worker (other replicas hear the
PostgreSQL NOTIFY). POSTs honour `Idempotency-Key` (see `app/api/idempotency.py`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.api.deps import app_context, json_body, require_api_token
from app.api.errors import ApiError
from app.api.idempotency import Answer, answer_idempotently
from app.api.paths import CUSTOMER_ID
from app.context import AppContext
from app.store.idempotency import IdempotencyRepository
from app.store.queue import BulkEnqueued, JobRecord, QueueRepository
from app.store.sync_state import as_utc
from app.store.transactions import TRANSACTION_TRIES, retry_transaction
from app.sync.core.jobs import EntityType, JobDirection, JobSource
from app.sync.schedule.runtime import wake_worker
from app.sync.worker.worker import Worker
from app.warp.connector import canonical_id

DEFAULT_PRIORITY = 5
MAX_BULK_IDS = 10_000
MAX_PROCESS_JOBS = 10_000
LOOKUP_CHUNK = 1000
ENQUEUE_TRIES = TRANSACTION_TRIES


async def queue_customer(request: Request) -> Response:
    """POST /v1/sync/customers/{customer_id}/queue  body: {"priority": 1-10} (optional)"""
    caller = require_api_token(request)
    context = app_context(request)
    queue = queue_of(context)
    body = await request.body()
    fields = _object(await json_body(request), allowed={"priority"})
    priority = _priority(fields)
    customer_id = request.path_params["customer_id"]

    async def produce(answer: Answer) -> tuple[int, dict[str, Any]]:
        known = await context.warp.existing_ids([customer_id])
        if not known:
            raise ApiError(404, f"customer {customer_id} does not exist in WARP")
        key = canonical_id(customer_id)
        async with context.engine.begin() as connection:
            job_id, created = await queue.enqueue(
                connection,
                EntityType.CUSTOMER,
                key,
                priority=priority,
                source=JobSource.API,
                direction=JobDirection.TO_HUBSPOT,
            )
            payload = {
                "job_id": job_id,
                "customer_id": key,
                "state": "pending",
                "coalesced": not created,
            }
            await answer.record(connection, 202, payload)
        wake_worker(context)
        return 202, payload

    return await answer_idempotently(
        request,
        idempotency_store(context),
        caller=caller,
        route="/v1/sync/customers/{customer_id}/queue",
        body=body,
        produce=produce,
    )


async def queue_customers(request: Request) -> Response:
    """POST /v1/sync/customers/queue  body: {"customer_ids": [...], "priority": 1-10}"""
    caller = require_api_token(request)
    context = app_context(request)
    queue = queue_of(context)
    body = await request.body()
    fields = _object(await json_body(request), allowed={"customer_ids", "priority"})
    priority = _priority(fields)
    requested = _customer_ids(fields)

    async def produce(answer: Answer) -> tuple[int, dict[str, Any]]:
        known: set[str] = set()
        for start in range(0, len(requested), LOOKUP_CHUNK):
            known |= await context.warp.existing_ids(requested[start : start + LOOKUP_CHUNK])
        keys: list[str] = []
        unknown: list[str] = []
        for customer_id in requested:
            key = _canonical_or_none(customer_id)
            if key is not None and key in known:
                keys.append(key)
            else:
                unknown.append(customer_id)

        async def enqueue_and_answer() -> tuple[BulkEnqueued, dict[str, Any]]:
            async with context.engine.begin() as connection:
                result = await queue.enqueue_many(
                    connection,
                    EntityType.CUSTOMER,
                    keys,
                    priority=priority,
                    source=JobSource.API,
                    direction=JobDirection.TO_HUBSPOT,
                )
                payload = {
                    "queued": result.created,
                    "coalesced": result.coalesced,
                    "unknown_ids": unknown,
                    "priority": priority,
                }
                await answer.record(connection, 202, payload)
            return result, payload

        # Another replica's enqueue, a worker's completion or a rescue may still make the
        # database abort this transaction to break a deadlock: run it again, whole; past the
        # tries, TransactionConflictError is a 503 with Retry-After (app/api/errors.py).
        result, payload = await retry_transaction(
            enqueue_and_answer, tries=ENQUEUE_TRIES, what="bulk enqueue"
        )
        if result.created or result.coalesced:
            wake_worker(context)
        return 202, payload

    return await answer_idempotently(
        request,
        idempotency_store(context),
        caller=caller,
        route="/v1/sync/customers/queue",
        body=body,
        produce=produce,
    )


async def process_queue(request: Request) -> Response:
    """POST /v1/sync/process-queue  body: {"max_jobs": 1-10000} (optional). Works the due
    jobs now, in this request, and answers with what became of them."""
    caller = require_api_token(request)
    context = app_context(request)
    queue = queue_of(context)
    worker: Worker | None = context.worker
    if worker is None:
        raise ApiError(503, "the queue worker is not running in this process")
    body = await request.body()
    fields = _object(await json_body(request), allowed={"max_jobs"})
    max_jobs = _bounded_int(fields, "max_jobs", 1, MAX_PROCESS_JOBS, default=1000)

    async def produce(_answer: Answer) -> tuple[int, dict[str, Any]]:
        counts = await worker.process_now(max_jobs=max_jobs)
        return 200, {**counts.as_dict(), "queue": await queue.counts()}

    return await answer_idempotently(
        request,
        idempotency_store(context),
        caller=caller,
        route="/v1/sync/process-queue",
        body=body,
        produce=produce,
    )


async def get_job(request: Request) -> Response:
    """GET /v1/sync/jobs/{job_id}"""
    require_api_token(request)
    raw_id = request.path_params["job_id"]
    job_id = int(raw_id) if raw_id.isdigit() and len(raw_id) < 19 else None
    record = await queue_of(app_context(request)).get(job_id) if job_id is not None else None
    if record is None:
        raise ApiError(404, f"job {raw_id} does not exist (or was pruned after finishing)")
    return JSONResponse(job_document(record))


def job_document(record: JobRecord) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        moment = as_utc(value)  # naive on SQLite: UTC, and RFC 3339 wants the offset
        return moment.isoformat() if moment is not None else None

    return {
        "job_id": record.id,
        "entity_type": record.entity_type,
        "entity_key": record.entity_key,
        "direction": record.direction,
        "source": record.source,
        "state": record.state,
        "priority": record.priority,
        "attempts": record.attempts,
        "run_at": when(record.run_at),
        "last_error": record.last_error,
        "last_error_kind": record.last_error_kind,
        "locked_by": record.locked_by,
        "lease_until": when(record.lease_until),
        "created_at": when(record.created_at),
        "updated_at": when(record.updated_at),
        "finished_at": when(record.finished_at),
    }


# -- request parsing -------------------------------------------------------------------------


def _object(document: Any, *, allowed: set[str]) -> dict[str, Any]:
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ApiError(422, "the body must be a JSON object")
    for name in document:
        if name not in allowed:
            raise ApiError(
                422,
                f"unknown field {name!r}; expected {', '.join(sorted(allowed))}",
                extra={"field": name},
            )
    return document


def _bounded_int(fields: dict[str, Any], name: str, low: int, high: int, *, default: int) -> int:
    value = fields.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}…"
        raise ApiError(
            422,
            f"{name}: expected a whole number from {low} to {high}, got {shown}",
            extra={"field": name},
        )
    return value


def _priority(fields: dict[str, Any]) -> int:
    """1 is the most urgent, 10 the least; 5 when not given."""
    return _bounded_int(fields, "priority", 1, 10, default=DEFAULT_PRIORITY)


def _customer_ids(fields: dict[str, Any]) -> list[str]:
    ids = fields.get("customer_ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BULK_IDS:
        raise ApiError(
            422,
            f"customer_ids: expected a list of 1 to {MAX_BULK_IDS} customer ids",
            extra={"field": "customer_ids"},
        )
    for index, value in enumerate(ids):
        if not isinstance(value, str) or not value.strip():
            raise ApiError(
                422,
                f"customer_ids[{index}]: expected a customer id string, got {value!r}",
                extra={"field": f"customer_ids[{index}]"},
            )
    return list(dict.fromkeys(ids))


def _canonical_or_none(customer_id: str) -> str | None:
    try:
        return canonical_id(customer_id)
    except ValueError:
        return None


def queue_of(context: AppContext) -> QueueRepository:
    queue: QueueRepository | None = context.queue
    if queue is None:
        raise ApiError(503, "the sync queue is not running in this process")
    return queue


def idempotency_store(context: AppContext) -> IdempotencyRepository:
    repository: IdempotencyRepository | None = context.idempotency
    if repository is None:
        raise ApiError(503, "the sync queue is not running in this process")
    return repository


routes: list[BaseRoute] = [
    Route("/v1/sync/customers/queue", queue_customers, methods=["POST"]),
    Route(f"/v1/sync/customers/{CUSTOMER_ID}/queue", queue_customer, methods=["POST"]),
    Route("/v1/sync/process-queue", process_queue, methods=["POST"]),
    Route("/v1/sync/jobs/{job_id}", get_job, methods=["GET"]),
    # The immediate path and the per-customer view live in app/api/customers.py.
]
