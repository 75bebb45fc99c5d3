"""The sync scope as stored (`hubsync_sync_scope`, one row), and the customers a sync skipped
as out of it (`hubsync_scope_exits`), so that their return reads HubSpot first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.sql import any_of, any_param, postgres_sql
from app.store.models import ScopeExit, SyncScope, table_of
from app.store.upsert import insert_for
from app.sync.core.scope import EVERYONE, Scope, scope_from_dicts

scope_table = table_of(SyncScope)
exits_table = table_of(ScopeExit)
SCOPE_ROW = 1


async def load_scope(connection: AsyncConnection) -> Scope:
    """The sync scope. Every sync batch loads it; on PostgreSQL straight from asyncpg."""
    if connection.dialect.name == "postgresql":
        rows = await _LOAD_SCOPE_POSTGRES.fetch(connection, row=SCOPE_ROW)
    else:
        rows = list(await connection.execute(_LOAD_SCOPE, {"row": SCOPE_ROW}))
    conditions = rows[0][0] if rows else None
    return scope_from_dicts(conditions) if conditions else EVERYONE


_LOAD_SCOPE = select(scope_table.c.conditions).where(scope_table.c.id == bindparam("row"))
_LOAD_SCOPE_POSTGRES = postgres_sql(_LOAD_SCOPE)


async def scope_record(connection: AsyncConnection) -> dict[str, Any]:
    """The scope with who changed it last and when (for GET /v1/sync/scope)."""
    row = (
        await connection.execute(select(scope_table).where(scope_table.c.id == SCOPE_ROW))
    ).first()
    if row is None:
        return {"conditions": [], "updated_at": None, "updated_by": None}
    return {
        "conditions": scope_from_dicts(row.conditions or []).to_json(),
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
        "updated_by": row.updated_by,
    }


async def save_scope(connection: AsyncConnection, scope: Scope, changed_by: str) -> Scope:
    """Store `scope`; returns the one it replaced."""
    before = await load_scope(connection)
    statement = insert_for(connection, scope_table)
    values = {
        "id": SCOPE_ROW,
        "conditions": scope.to_json(),
        "updated_at": datetime.now(UTC),
        "updated_by": changed_by[:128],
    }
    await connection.execute(
        statement.values(**values).on_conflict_do_update(
            index_elements=["id"],
            set_={k: v for k, v in values.items() if k != "id"},
        )
    )
    return before


async def note_exits(connection: AsyncConnection, customer_ids: Sequence[str]) -> None:
    if not customer_ids:
        return
    statement = insert_for(connection, exits_table)
    stamp = datetime.now(UTC)
    await connection.execute(
        statement.on_conflict_do_nothing(index_elements=["warp_customer_id"]),
        [{"warp_customer_id": cid, "left_at": stamp} for cid in sorted(set(customer_ids))],
    )


async def exited(connection: AsyncConnection, customer_ids: Sequence[str]) -> set[str]:
    """Of these customers, those a sync skipped as out of scope and has not synced since."""
    if not customer_ids:
        return set()
    if connection.dialect.name == "postgresql":  # every batch: straight from asyncpg
        found = await _EXITED_POSTGRES.fetch(connection, ids=list(customer_ids))
        return {row[0] for row in found}
    rows = await connection.execute(
        select(exits_table.c.warp_customer_id).where(
            any_of(connection, exits_table.c.warp_customer_id, customer_ids)
        )
    )
    return {row.warp_customer_id for row in rows}


_EXITED_POSTGRES = postgres_sql(
    select(exits_table.c.warp_customer_id).where(any_param(exits_table.c.warp_customer_id, "ids"))
)


async def forget_exits(connection: AsyncConnection, customer_ids: Sequence[str]) -> None:
    if customer_ids:
        await connection.execute(
            delete(exits_table).where(
                any_of(connection, exits_table.c.warp_customer_id, customer_ids)
            )
        )
