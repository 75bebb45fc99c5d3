"""The durable sync queue (`hubspot_sync_queue`): enqueue with coalescing, claim under a lease,
complete, and keep it healthy. Callers use `QueueRepository` and the records below; the
modules inside are its parts: `records` (types, states, the clock), `enqueue` (one pending
job per entity), `pending` (returning jobs to pending), `maintenance` (rescue, requeue,
prune) and `repository` (the queries, as one object)."""

from app.store.queue.records import (
    DONE,
    FAILED,
    NOTIFY_CHANNEL,
    PENDING,
    QUEUE,
    RUNNING,
    SQL_SUPERSEDED,
    STATES,
    SUPERSEDED,
    BulkEnqueued,
    CompletionSummary,
    Enqueued,
    EntityBusyError,
    JobRecord,
)
from app.store.queue.repository import QueueRepository

__all__ = [
    "DONE",
    "FAILED",
    "NOTIFY_CHANNEL",
    "PENDING",
    "QUEUE",
    "RUNNING",
    "SQL_SUPERSEDED",
    "STATES",
    "SUPERSEDED",
    "BulkEnqueued",
    "CompletionSummary",
    "Enqueued",
    "EntityBusyError",
    "JobRecord",
    "QueueRepository",
]
