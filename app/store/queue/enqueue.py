"""Enqueueing with coalescing: one pending job per entity, decided by the database.

Runs on the caller's connection, inside the caller's transaction, so a job exists iff that
transaction commits. A request for an entity that already has a pending job is merged into it
by the partial unique index (`INSERT … ON CONFLICT … WHERE state = 'pending' DO UPDATE`): the
more urgent priority and the earlier run time win (except that a job waiting out a retry's
backoff keeps it), two directions become `both`, the newest
payload is kept. Never check-then-insert: concurrent duplicates cannot make two rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, case, func, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.queue.records import (
    NOTIFY_CHANNEL,
    PENDING,
    QUEUE,
    SQL_STATE,
    BulkEnqueued,
    sql_now,
)
from app.sync.core.jobs import JobDirection

# The conflict target must repeat the partial index's predicate literally to be inferred.
PENDING_ONLY = text("state = 'pending'")


async def upsert_pending(
    connection: AsyncConnection,
    entity_type: str,
    keys: list[str],
    *,
    priority: int,
    source: str,
    direction: str,
    payload: dict[str, Any] | None,
) -> BulkEnqueued:
    """Queue `keys` (distinct) in one statement; on PostgreSQL also NOTIFY listeners, in the
    same transaction so they hear of the jobs exactly when the jobs become visible."""
    if not 1 <= priority <= 10:
        raise ValueError(f"priority must be 1 (most urgent) to 10, got {priority}")
    keys = sorted(keys)  # one lock order for every enqueue: see `QueueRepository.enqueue_many`
    if connection.dialect.name == "postgresql":
        upserted = await _upsert_postgres(
            connection,
            [(entity_type, key, direction) for key in keys],
            priority=priority,
            source=source,
            payload=payload,
        )
        fresh = sum(1 for *_, inserted in upserted if inserted)
        return BulkEnqueued(
            fresh, len(keys) - fresh, {key: job_id for job_id, _, key, _ in upserted}
        )
    now = sql_now(connection.dialect)
    rows = [
        {
            "entity_type": entity_type,
            "entity_key": key,
            "direction": direction,
            "source": source,
            "state": PENDING,
            "priority": priority,
            "payload": payload,
            "run_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for key in keys
    ]
    job_ids, created = await _upsert_sqlite(connection, entity_type, rows)
    return BulkEnqueued(len(created), len(keys) - len(created), job_ids)


async def upsert_pending_each(
    connection: AsyncConnection,
    requests: Sequence[tuple[str, str, str]],
    *,
    priority: int,
    source: str,
) -> dict[tuple[str, str], int]:
    """Queue (entity_type, key, direction) requests of several types and directions: one
    statement on PostgreSQL. The requests must be distinct and in the callers' common lock
    order (by type, then key); {(entity_type, key): job id}."""
    if not requests:
        return {}
    if connection.dialect.name == "postgresql":
        rows = await _upsert_postgres(
            connection, requests, priority=priority, source=source, payload=None
        )
        return {(entity_type, key): job_id for job_id, entity_type, key, _ in rows}
    job_ids: dict[tuple[str, str], int] = {}
    for entity_type, direction in dict.fromkeys((t, d) for t, _, d in requests):
        keys = [k for t, k, d in requests if (t, d) == (entity_type, direction)]
        result = await upsert_pending(
            connection,
            entity_type,
            keys,
            priority=priority,
            source=source,
            direction=direction,
            payload=None,
        )
        job_ids.update({(entity_type, key): job_id for key, job_id in result.job_ids.items()})
    return job_ids


def pending_upsert_postgres(rows: str, *, source: str, priority: str, payload: str) -> str:
    """The PostgreSQL upsert of pending jobs as SQL text, from `rows` — a FROM item giving the
    columns t (entity type), k (key), d (direction) and n (the lock order) — and SQL
    expressions for the source, priority and payload; `RETURNING` id, entity_type,
    entity_key, inserted, notified. For `upsert_pending` (rows unnested from arrays) and for
    statements that queue jobs as a part of something else (the webhook intake's, in
    app/store/webhook_events.py).

    The times are the database's `now()`. xmax is 0 on a freshly inserted row version and set
    on one the upsert updated. The NOTIFY rides along in RETURNING rather than costing a round
    trip of its own: it takes effect at commit like any NOTIFY, and PostgreSQL folds a
    transaction's identical notifications into one. The conflict target repeats the partial
    index's predicate literally, to be inferred; on a conflict the rules of the module
    docstring (`_merged_run_at`, `_merged_direction` on SQLite)."""
    return f"""
INSERT INTO hubspot_sync_queue AS q (entity_type, entity_key, direction, source, state,
    priority, payload, run_at, created_at, updated_at)
SELECT r.t, r.k, r.d, {source}, '{PENDING}', {priority}, {payload}, now(), now(), now()
FROM {rows}
ORDER BY r.n
ON CONFLICT (entity_type, entity_key) WHERE {PENDING_ONLY.text} DO UPDATE SET
    priority = least(q.priority, excluded.priority),
    run_at = CASE WHEN q.attempts > 0 THEN q.run_at ELSE least(q.run_at, excluded.run_at) END,
    direction = CASE WHEN q.direction = excluded.direction THEN q.direction
        ELSE '{JobDirection.BOTH.value}' END,
    payload = coalesce(excluded.payload, q.payload),
    updated_at = excluded.updated_at
RETURNING q.id, q.entity_type, q.entity_key, (q.xmax = 0) AS inserted,
    pg_notify('{NOTIFY_CHANNEL}', q.entity_type) AS notified
"""


# One statement for any number of rows: one array per column, unnested by the server (a
# statement prepared once per connection, a handful of parameters whatever the row count).
_UPSERT_POSTGRES = pending_upsert_postgres(
    "unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r(t, k, d, n)",
    source="$4::text",
    priority="$5::smallint",
    payload="$6::jsonb",
)


async def _upsert_postgres(
    connection: AsyncConnection,
    requests: Sequence[tuple[str, str, str]],
    *,
    priority: int,
    source: str,
    payload: dict[str, Any] | None,
) -> list[tuple[int, str, str, bool]]:
    """(job id, entity_type, key, inserted) per request."""
    # Rows of SQL text are untyped: (id, entity_type, entity_key, inserted, notified).
    result: Any = await connection.exec_driver_sql(
        _UPSERT_POSTGRES,
        (
            [entity_type for entity_type, _, _ in requests],
            [key for _, key, _ in requests],
            [direction for _, _, direction in requests],
            source,
            priority,
            None if payload is None else json.dumps(payload),
        ),
    )
    return [(row[0], row[1], row[2], row[3]) for row in result]  # id, type, key, inserted


async def _upsert_sqlite(
    connection: AsyncConnection, entity_type: str, rows: list[dict[str, Any]]
) -> tuple[dict[str, int], set[str]]:
    # SQLite's RETURNING cannot tell an upsert's insert from its update, so: insert what is
    # new, then merge into the rest. The INSERT takes SQLite's single write lock for the
    # caller's transaction, so no one can change those pending rows between the two.
    insert_new = (
        sqlite_insert(QUEUE)
        .values(rows)
        .on_conflict_do_nothing(
            index_elements=[QUEUE.c.entity_type, QUEUE.c.entity_key], index_where=PENDING_ONLY
        )
        .returning(QUEUE.c.id, QUEUE.c.entity_key)
    )
    job_ids = {row.entity_key: row.id for row in await connection.execute(insert_new)}
    created = set(job_ids)
    rest = [row["entity_key"] for row in rows if row["entity_key"] not in created]
    if rest:
        sample = rows[0]
        merged: dict[str, Any] = {
            "priority": func.min(QUEUE.c.priority, sample["priority"]),
            "run_at": _merged_run_at(func.min(QUEUE.c.run_at, sample["run_at"])),
            "direction": _merged_direction(sample["direction"]),
            "updated_at": sample["updated_at"],
        }
        if sample["payload"] is not None:
            merged["payload"] = sample["payload"]
        merge = (
            update(QUEUE)
            .where(
                QUEUE.c.entity_type == entity_type,
                QUEUE.c.entity_key.in_(rest),
                QUEUE.c.state == SQL_STATE[PENDING],
            )
            .values(merged)
            .returning(QUEUE.c.id, QUEUE.c.entity_key)
        )
        job_ids.update({row.entity_key: row.id for row in await connection.execute(merge)})
    return job_ids, created


def _merged_run_at(earliest: ColumnElement[Any]) -> ColumnElement[Any]:
    """A job that has been tried (it is waiting out a backoff) keeps its run time: a stream
    of requests for a failing entity must not defeat the backoff. A job never tried runs at
    the earlier of the two times."""
    return case((QUEUE.c.attempts > 0, QUEUE.c.run_at), else_=earliest)


def _merged_direction(new: Any) -> ColumnElement[Any]:
    """Two requests that go different ways for one entity become one that goes both ways."""
    return case((QUEUE.c.direction == new, QUEUE.c.direction), else_=JobDirection.BOTH.value)
