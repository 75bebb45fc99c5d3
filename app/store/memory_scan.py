"""Whole-table reads of what hubsync remembers, for a preview over every linked customer:
active links, field memory for a few fields, open conflicts on them. One query each, so a
forecast over 100,000 customers reads them in seconds rather than page by page."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import Conflict, EntityLink, FieldState, table_of
from app.store.sync_state import memory_of
from app.sync.core.records import FieldMemory

LINKS = table_of(EntityLink)
STATES = table_of(FieldState)
CONFLICTS = table_of(Conflict)


async def active_links(connection: AsyncConnection) -> dict[str, str]:
    """Customer id -> company id, for every active link that has both."""
    rows = await connection.execute(
        select(LINKS.c.warp_customer_id, LINKS.c.hubspot_company_id).where(
            LINKS.c.state == "active",
            LINKS.c.warp_customer_id.is_not(None),
            LINKS.c.hubspot_company_id.is_not(None),
        )
    )
    return {row.warp_customer_id: row.hubspot_company_id for row in rows}


async def memory_of_fields(
    connection: AsyncConnection, fields: Sequence[str]
) -> dict[str, dict[str, FieldMemory]]:
    """Customer id -> field -> memory, for these fields only."""
    memory: dict[str, dict[str, FieldMemory]] = {}
    if not fields:
        return memory
    rows = await connection.execute(
        select(
            STATES.c.warp_customer_id,
            STATES.c.field,
            *(STATES.c[name] for name in FieldMemory._fields),
        ).where(STATES.c.field.in_(list(fields)))
    )
    for row in rows:
        memory.setdefault(row.warp_customer_id, {})[row.field] = memory_of(row)
    return memory


async def open_conflicts_on(
    connection: AsyncConnection, fields: Sequence[str]
) -> dict[str, set[str]]:
    """Customer id -> fields with an open conflict, among these fields."""
    found: dict[str, set[str]] = {}
    if not fields:
        return found
    rows = await connection.execute(
        select(CONFLICTS.c.warp_customer_id, CONFLICTS.c.field).where(
            CONFLICTS.c.state == "open", CONFLICTS.c.field.in_(list(fields))
        )
    )
    for row in rows:
        found.setdefault(row.warp_customer_id, set()).add(row.field)
    return found
