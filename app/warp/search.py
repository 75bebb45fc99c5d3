"""Finding customers in WARP's table for the operator's console: by billing account number,
by name, or page through all of them — each bounded by a limit and keyed by id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.warp.connector import CustomerRecord, SqlWarpConnector, decode_customer

SUMMARY_COLUMNS = ("id", "ban", "company_name", "status", "customer_type", "updated_at")


async def search_customers(
    warp: SqlWarpConnector, text: str, *, after_id: str | None = None, limit: int = 50
) -> list[CustomerRecord]:
    """The customer whose BAN is `text` (exact, WARP's unique index), else those whose name
    contains it (case-insensitive; stops at `limit` matches); all when `text` is blank."""
    table = warp.table
    query = (
        select(*(table.c[name] for name in SUMMARY_COLUMNS), table.c.external_ids)
        .order_by(table.c.id)
        .limit(limit)
    )
    needle = text.strip()
    if after_id is not None:
        query = query.where(table.c.id > after_id)
    async with warp.engine.connect() as connection:
        if needle and after_id is None:
            by_ban = await connection.execute(query.where(table.c.ban == needle))
            found = [decode_customer(row._mapping) for row in by_ban]
            if found:
                return found
        if needle:
            # WARP owns its table and its indexes: a name search scans it (until `limit`
            # matches); a trigram index on company_name on WARP's side makes it instant.
            query = query.where(
                func.lower(table.c.company_name).contains(needle.lower(), autoescape=True)
            )
        return [decode_customer(row._mapping) for row in await connection.execute(query)]


async def count_customers(warp: SqlWarpConnector) -> int:
    async with warp.engine.connect() as connection:
        count: Any = await connection.scalar(select(func.count()).select_from(warp.table))
    return int(count or 0)
