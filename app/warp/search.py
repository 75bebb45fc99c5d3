"""Finding customers in WARP's table for the operator's console: by billing account number,
by name, or page through all of them — each bounded by a limit and keyed by id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from app.warp.connector import CustomerRecord, SqlWarpConnector, decode_customer

SUMMARY_COLUMNS = ("id", "ban", "company_name", "status", "customer_type", "updated_at")


async def search_customers(
    warp: SqlWarpConnector, text: str, *, after_id: str | None = None, limit: int = 50
) -> list[CustomerRecord]:
    """Customers whose BAN is `text` (exact, the unique index) or whose name contains it
    (case-insensitive; stops at `limit` matches); all customers when `text` is blank."""
    table = warp.table
    query = (
        select(*(table.c[name] for name in SUMMARY_COLUMNS), table.c.external_ids)
        .order_by(table.c.id)
        .limit(limit)
    )
    needle = text.strip()
    if needle:
        query = query.where(
            or_(
                table.c.ban == needle,
                func.lower(table.c.company_name).contains(needle.lower(), autoescape=True),
            )
        )
    if after_id is not None:
        query = query.where(table.c.id > after_id)
    async with warp.engine.connect() as connection:
        return [decode_customer(row._mapping) for row in await connection.execute(query)]


async def count_customers(warp: SqlWarpConnector) -> int:
    async with warp.engine.connect() as connection:
        count: Any = await connection.scalar(select(func.count()).select_from(warp.table))
    return int(count or 0)
