"""Pruning hubsync's history: stored webhook events and the sync log older than the retention
(HUBSYNC_HISTORY_RETENTION, 30 days by default), in bounded batches of short transactions.

Kept whatever their age: webhook events still to be handled (received, queued, failed — a
failed one until it is re-run and done), and a failed sync log entry until a later sync of
the same customer went through (it is the evidence of a failure nobody has fixed yet).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.models import SyncLog, WebhookEvent, table_of
from app.store.queue.maintenance import delete_in_batches
from app.store.webhook_events import IGNORED, PROCESSED

log = logging.getLogger("hubsync.retention")
events_t = table_of(WebhookEvent)
sync_log_t = table_of(SyncLog)


def _finished_events(cutoff: Any) -> ColumnElement[bool]:
    return and_(events_t.c.status.in_([PROCESSED, IGNORED]), events_t.c.received_at < cutoff)


def _settled_log_entries(cutoff: Any) -> ColumnElement[bool]:
    later = sync_log_t.alias("later")
    handled = exists().where(
        later.c.warp_customer_id == sync_log_t.c.warp_customer_id,
        later.c.id > sync_log_t.c.id,
        later.c.outcome != "failed",
    )
    return and_(sync_log_t.c.created_at < cutoff, or_(sync_log_t.c.outcome != "failed", handled))


async def prune_webhook_events(
    engine: AsyncEngine, older_than: timedelta, *, batch_size: int = 1000, max_batches: int = 20
) -> int:
    return await delete_in_batches(
        engine,
        events_t,
        _finished_events,
        older_than,
        batch_size=batch_size,
        max_batches=max_batches,
    )


async def prune_sync_log(
    engine: AsyncEngine, older_than: timedelta, *, batch_size: int = 1000, max_batches: int = 20
) -> int:
    return await delete_in_batches(
        engine,
        sync_log_t,
        _settled_log_entries,
        older_than,
        batch_size=batch_size,
        max_batches=max_batches,
    )


@dataclass
class HistoryPruning:
    """The scheduler's task (every replica runs it; deleting the same old rows twice is
    harmless). Each run deletes at most `max_batches` batches per table, so a long backlog is
    worked off over several runs without one long transaction."""

    engine: AsyncEngine
    retention: timedelta

    async def __call__(self) -> None:
        events = await prune_webhook_events(self.engine, self.retention)
        entries = await prune_sync_log(self.engine, self.retention)
        if events or entries:
            log.info("history pruned: %d webhook events, %d sync log entries", events, entries)
