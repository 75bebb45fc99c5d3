"""Putting jobs back to pending without breaking "one pending job per entity".

A job goes back to pending when it is retried, released at shutdown, rescued after its lease
expired, or requeued by an operator. Meanwhile its entity may have gained a newer pending job
(a request that arrived while it ran). Both cannot be pending, and neither may be lost: the
returning job is folded into the pending one (which will sync the entity's current state
anyway) and is marked done with `last_error_kind='superseded'` and the id it was merged into.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select, tuple_, update
from sqlalchemy.engine import Dialect, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.queue.records import DONE, PENDING, QUEUE, SQL_STATE, SUPERSEDED


@dataclass(frozen=True)
class PendingReturn:
    id: int
    entity_type: str
    entity_key: str
    priority: int
    run_at: datetime
    error: str | None
    error_kind: str | None
    attempts: int

    @classmethod
    def of(
        cls,
        row: RowMapping,
        run_at: datetime,
        error: str | None,
        error_kind: str | None,
        *,
        attempts: int | None = None,
    ) -> PendingReturn:
        return cls(
            id=row["id"],
            entity_type=row["entity_type"],
            entity_key=row["entity_key"],
            priority=row["priority"],
            run_at=run_at,
            error=error,
            error_kind=error_kind,
            attempts=row["attempts"] if attempts is None else attempts,
        )


def least(dialect: Dialect, left: Any, right: Any) -> ColumnElement[Any]:
    """The smaller of two values: LEAST on PostgreSQL, two-argument MIN on SQLite."""
    if dialect.name == "postgresql":
        return func.least(left, right)
    return func.min(left, right)


async def return_to_pending(
    connection: AsyncConnection,
    now: datetime,
    items: Sequence[PendingReturn],
    guard: Sequence[ColumnElement[bool]],
) -> int:
    """Make `items` pending again (only rows still matching `guard`); returns how many were
    folded into a pending job of their entity instead. When several items share an entity,
    the first listed survives."""
    if not items:
        return 0
    pairs = sorted({(item.entity_type, item.entity_key) for item in items})
    pending = await connection.execute(
        select(QUEUE.c.id, QUEUE.c.entity_type, QUEUE.c.entity_key).where(
            QUEUE.c.state == SQL_STATE[PENDING],
            tuple_(QUEUE.c.entity_type, QUEUE.c.entity_key).in_(pairs),
        )
    )
    holder = {(row.entity_type, row.entity_key): row.id for row in pending}
    survivors: list[PendingReturn] = []
    merged: list[tuple[PendingReturn, int]] = []
    for item in items:
        entity = (item.entity_type, item.entity_key)
        if entity in holder:
            merged.append((item, holder[entity]))
        else:
            holder[entity] = item.id
            survivors.append(item)
    if survivors:
        await connection.execute(
            update(QUEUE)
            .where(QUEUE.c.id == bindparam("b_id"), *guard)
            .values(
                state=SQL_STATE[PENDING],
                run_at=bindparam("b_run_at"),
                attempts=bindparam("b_attempts"),
                last_error=bindparam("b_error"),
                last_error_kind=bindparam("b_kind"),
                locked_by=None,
                lease_until=None,
                finished_at=None,
                updated_at=now,
            ),
            [
                {
                    "b_id": item.id,
                    "b_run_at": item.run_at,
                    "b_attempts": item.attempts,
                    "b_error": item.error,
                    "b_kind": item.error_kind,
                }
                for item in survivors
            ],
        )
    if merged:
        await connection.execute(
            update(QUEUE)
            .where(QUEUE.c.id == bindparam("b_id"), *guard)
            .values(
                state=SQL_STATE[DONE],
                last_error=bindparam("b_error"),
                last_error_kind=SUPERSEDED,
                locked_by=None,
                lease_until=None,
                finished_at=now,
                updated_at=now,
            ),
            [{"b_id": item.id, "b_error": _merge_note(into, item.error)} for item, into in merged],
        )
        # The surviving job inherits the more urgent priority.
        await connection.execute(
            update(QUEUE)
            .where(QUEUE.c.id == bindparam("b_id"), QUEUE.c.state == SQL_STATE[PENDING])
            .values(priority=least(connection.dialect, QUEUE.c.priority, bindparam("b_priority"))),
            [{"b_id": into, "b_priority": item.priority} for item, into in merged],
        )
    return len(merged)


def _merge_note(into: int, error: str | None) -> str:
    note = f"merged into job {into}, which syncs the entity's current state"
    return f"{note}; last error: {error}" if error else note
