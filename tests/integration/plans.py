"""What a statement costs, from PostgreSQL's own account: EXPLAIN ANALYZE of the very SQL the
hot path runs through asyncpg, in a transaction rolled back, and the rows its plan touched."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine


def rows_touched(node: dict[str, Any]) -> int:
    """Rows a plan node and its children produced or threw away, over all their loops."""
    loops = int(node.get("Actual Loops", 1))
    own = sum(
        int(node.get(key, 0))
        for key in ("Actual Rows", "Rows Removed by Filter", "Rows Removed by Join Filter")
    )
    return own * loops + sum(rows_touched(child) for child in node.get("Plans", []))


async def explained(engine: AsyncEngine, statement: str, params: list[Any]) -> dict[str, Any]:
    """The executed plan of `statement` (EXPLAIN ANALYZE, JSON), its writes undone."""
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        transaction = raw.transaction()
        await transaction.start()
        try:  # EXPLAIN ANALYZE runs an UPDATE: undone below
            plan_json = await raw.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", *params)
        finally:
            await transaction.rollback()
    # SQLAlchemy's asyncpg connection may already decode json; plain asyncpg does not.
    plan: dict[str, Any] = (json.loads(plan_json) if isinstance(plan_json, str) else plan_json)[0][
        "Plan"
    ]
    return plan
