"""When each WARP column of a customer last changed, as the capture in WARP reported it
(`hubsync_warp_column_changes`): written by the capture drain, read by the sync engine for
LATEST_WINS. Times only move forward: a change drained late never dates a column back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.sql import any_of, any_param, postgres_sql
from app.store.models import WarpColumnChange, table_of
from app.store.upsert import insert_for

column_changes = table_of(WarpColumnChange)


async def note_column_changes(
    connection: AsyncConnection, changes: Iterable[tuple[str, str, datetime]]
) -> int:
    """Upsert (customer id, column, changed at), keeping the later time per column."""
    latest: dict[tuple[str, str], datetime] = {}
    for customer_id, column, at in changes:
        key = (customer_id, column)
        if key not in latest or at > latest[key]:
            latest[key] = at
    if not latest:
        return 0
    rows = [
        {"warp_customer_id": key[0], "column": key[1], "changed_at": at}
        for key, at in sorted(latest.items())  # one lock order for every writer
    ]
    statement = insert_for(connection, column_changes)
    table_time = column_changes.c.changed_at
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=["warp_customer_id", "column"],
            set_={
                "changed_at": case(
                    (statement.excluded.changed_at > table_time, statement.excluded.changed_at),
                    else_=table_time,
                )
            },
        ),
        rows,
    )
    return len(rows)


_CHANGES = select(
    column_changes.c.warp_customer_id, column_changes.c.column, column_changes.c.changed_at
)
_CHANGES_POSTGRES = postgres_sql(
    _CHANGES.where(any_param(column_changes.c.warp_customer_id, "ids"))
)


async def column_change_times(
    connection: AsyncConnection, customer_ids: Sequence[str]
) -> dict[str, dict[str, datetime]]:
    """customer id -> column -> when it last changed (only columns the capture has seen)."""
    found: dict[str, dict[str, datetime]] = {}
    wanted = sorted(set(customer_ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        if connection.dialect.name == "postgresql":  # every batch: straight from asyncpg
            rows: Any = await _CHANGES_POSTGRES.fetch(connection, ids=chunk)
        else:
            rows = await connection.execute(
                _CHANGES.where(any_of(connection, column_changes.c.warp_customer_id, chunk))
            )
        for customer_id, column, at in rows:
            moment = at if at.tzinfo else at.replace(tzinfo=UTC)
            found.setdefault(customer_id, {})[column] = moment
    return found
