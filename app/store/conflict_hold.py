"""Holding one conflict while an operator's resolution of it is written.

A resolution reads the conflict, may write a typed value to WARP, then closes the conflict.
Two operators resolving the same conflict at once must not both do that: the first to hold
the conflict writes and closes it, the second then finds it closed. On PostgreSQL the hold
is the conflict's row lock (`SELECT … FOR UPDATE`) for the whole transaction, the WARP write
included; the field's state row is locked first, in the order the engine's own transaction
locks them (field states, then conflicts), so a resolution and a sync of the same customer
wait for each other and never deadlock. SQLite has no row locks, and the WARP table may live
in the same file (a write there would wait on a write transaction held here), so there the
hold is a lock in this process: SQLite runs one hubsync process.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store.console import ConflictRow, get_conflict
from app.store.sync_state import conflicts, field_states

_PROCESS_LOCKS: weakref.WeakKeyDictionary[object, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def holding_conflict(
    engine: AsyncEngine, conflict_id: int
) -> AsyncIterator[tuple[AsyncConnection, ConflictRow | None]]:
    """A transaction in which the conflict (None: no such conflict) cannot change under the
    caller; what the caller writes with the connection commits when the block ends."""
    if engine.dialect.name == "postgresql":
        async with engine.begin() as connection:
            yield connection, await _lock(connection, conflict_id)
        return
    lock = _PROCESS_LOCKS.setdefault(engine.sync_engine, asyncio.Lock())
    async with lock:
        async with engine.connect() as connection:
            conflict = await get_conflict(connection, conflict_id)
        # SQLite begins the transaction at its first write: until then WARP may be written.
        async with engine.begin() as connection:
            yield connection, conflict


async def _lock(connection: AsyncConnection, conflict_id: int) -> ConflictRow | None:
    found = await get_conflict(connection, conflict_id)
    if found is None:
        return None
    await connection.execute(
        select(field_states.c.field)
        .where(
            field_states.c.warp_customer_id == found.warp_customer_id,
            field_states.c.field == found.field,
        )
        .with_for_update()
    )
    await connection.execute(
        select(conflicts.c.id).where(conflicts.c.id == conflict_id).with_for_update()
    )
    return await get_conflict(connection, conflict_id)  # as it is now we hold it
