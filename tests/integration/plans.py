"""What a statement costs, from PostgreSQL's own account: EXPLAIN ANALYZE of the very SQL the
hot path runs through asyncpg, in a transaction rolled back, and the rows its plan touched."""

from __future__ import annotations

import json
from datetime import datetime
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


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return f"ARRAY[{', '.join(map(_literal, value))}]"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"


async def explained(
    engine: AsyncEngine, statement: str, params: list[Any], *, generic: bool = False
) -> dict[str, Any]:
    """The executed plan of `statement` (EXPLAIN ANALYZE, JSON), its writes undone.

    `generic`: the plan PostgreSQL keeps for a prepared statement once it stops planning it
    for each call's values (after five calls, when that plan looks no dearer): what a hot
    statement of asyncpg's cache runs from then on. It cannot count on a parameter's value,
    so a partial index serves it only if the query names the index's condition literally."""
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        transaction = raw.transaction()
        await transaction.start()
        prepared = False
        try:  # EXPLAIN ANALYZE runs an UPDATE: undone below
            if generic:
                await raw.execute(f"PREPARE hubsync_explained AS {statement}")
                prepared = True
                await raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                # EXECUTE takes no bound parameters: the values go in as literals.
                statement = f"EXECUTE hubsync_explained({', '.join(map(_literal, params))})"
                params = []
            plan_json = await raw.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", *params)
        finally:
            await transaction.rollback()
            if prepared:  # a session's, not undone by the rollback; asyncpg's own stay
                await raw.execute("DEALLOCATE hubsync_explained")
    # SQLAlchemy's asyncpg connection may already decode json; plain asyncpg does not.
    plan: dict[str, Any] = (json.loads(plan_json) if isinstance(plan_json, str) else plan_json)[0][
        "Plan"
    ]
    return plan
