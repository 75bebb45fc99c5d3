"""Enqueueing with coalescing: one pending job per entity, decided by the database.

Runs on the caller's connection, inside the caller's transaction, so a job exists iff that
transaction commits. A request for an entity that already has a pending job is merged into it
by the partial unique index (`INSERT … ON CONFLICT … WHERE state = 'pending' DO UPDATE`): the
more urgent priority and the earlier run time win (except that a job waiting out a retry's
backoff keeps it), two directions become `both`, the newest
payload is kept. Never check-then-insert: concurrent duplicates cannot make two rows.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, case, func, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
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
        job_ids, created = await _upsert_postgres(
            connection,
            [
                {
                    "entity_type": entity_type,
                    "entity_key": key,
                    "direction": direction,
                    "source": source,
                    "state": PENDING,
                    "priority": priority,
                    "payload": payload,
                }
                for key in keys
            ],
        )
        return BulkEnqueued(len(created), len(keys) - len(created), job_ids)
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


@functools.cache
def _postgres_upsert() -> Any:
    """The upsert as one statement built once and run as an executemany: SQLAlchemy caches its
    compiled form and sends the rows as one multi-row INSERT ("insertmanyvalues"), where a
    `.values(rows)` insert is recompiled on every call (it has no cache key). The times are
    the database's `now()`, the same for every row of the transaction."""
    statement = pg_insert(QUEUE).values(
        run_at=func.now(), created_at=func.now(), updated_at=func.now()
    )
    new = statement.excluded
    upsert = statement.on_conflict_do_update(
        index_elements=[QUEUE.c.entity_type, QUEUE.c.entity_key],
        index_where=PENDING_ONLY,
        set_={
            "priority": func.least(QUEUE.c.priority, new.priority),
            "run_at": _merged_run_at(func.least(QUEUE.c.run_at, new.run_at)),
            "direction": _merged_direction(new.direction),
            "payload": func.coalesce(new.payload, QUEUE.c.payload),
            "updated_at": new.updated_at,
        },
    )
    # xmax is 0 on a freshly inserted row version and set on one the upsert updated. The
    # NOTIFY rides along in RETURNING rather than costing a round trip of its own: it takes
    # effect at commit like any NOTIFY, and PostgreSQL folds a transaction's identical
    # notifications into one.
    return upsert.returning(
        QUEUE.c.id,
        QUEUE.c.entity_key,
        text("(xmax = 0) AS inserted"),
        func.pg_notify(NOTIFY_CHANNEL, QUEUE.c.entity_type).label("notified"),
    )


async def _upsert_postgres(
    connection: AsyncConnection, rows: list[dict[str, Any]]
) -> tuple[dict[str, int], set[str]]:
    job_ids: dict[str, int] = {}
    created: set[str] = set()
    for row in await connection.execute(_postgres_upsert(), rows):
        job_ids[row.entity_key] = row.id
        if row.inserted:
            created.add(row.entity_key)
    return job_ids, created


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
