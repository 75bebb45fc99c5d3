"""The catch-up's watermarks (`hubspot_catchup_watermarks`): how far each side has been read,
and which replica does the current pass.

Every replica's scheduler fires the catch-up; `claim_pass` lets exactly one of them do each
pass per side (a lease as long as the interval, taken by a conditional UPDATE), so HubSpot's
search budget is not spent twice. The watermark only moves forward, after the jobs of the
window it closes are committed: a pass that dies is repeated, never skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store.models import CatchupWatermark, EntityLink, table_of
from app.store.queue.records import as_utc, maybe_utc, sql_now
from app.store.upsert import insert_for

WATERMARKS = table_of(CatchupWatermark)
LINKS = table_of(EntityLink)


@dataclass(frozen=True)
class Watermark:
    source: str
    watermark: datetime | None
    queued: int = 0
    updated_at: datetime | None = None


async def claim_pass(
    engine: AsyncEngine, source: str, owner: str, lease_seconds: float
) -> Watermark | None:
    """This replica's turn for `source`, with the watermark to start from; None when another
    replica holds the current pass."""
    async with engine.begin() as connection:
        dialect = connection.dialect
        await connection.execute(
            insert_for(connection, WATERMARKS)
            .values(source=source, updated_at=sql_now(dialect))
            .on_conflict_do_nothing(index_elements=["source"])
        )
        row = (
            (
                await connection.execute(
                    update(WATERMARKS)
                    .where(
                        WATERMARKS.c.source == source,
                        or_(
                            WATERMARKS.c.lease_until.is_(None),
                            WATERMARKS.c.lease_until < sql_now(dialect),
                            WATERMARKS.c.claimed_by == owner,
                        ),
                    )
                    .values(claimed_by=owner, lease_until=sql_now(dialect, lease_seconds))
                    .returning(*WATERMARKS.c)
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    return _watermark(row)


async def advance(
    connection: AsyncConnection, source: str, owner: str, watermark: datetime, queued: int
) -> None:
    """Move the watermark forward (never back) in the caller's transaction."""
    await connection.execute(
        update(WATERMARKS)
        .where(WATERMARKS.c.source == source, WATERMARKS.c.claimed_by == owner)
        .values(watermark=watermark, queued=queued, updated_at=sql_now(connection.dialect))
    )


async def watermarks(connection: AsyncConnection) -> list[Watermark]:
    rows = await connection.execute(select(WATERMARKS).order_by(WATERMARKS.c.source))
    return [_watermark(row) for row in rows.mappings()]


async def last_synced(
    connection: AsyncConnection,
    *,
    customer_ids: Sequence[str] = (),
    company_ids: Sequence[str] = (),
) -> dict[str, datetime]:
    """When hubsync last synced each of these customers (or companies), by that id: a change
    no later than that was hubsync's own write, or already synced."""
    column = LINKS.c.warp_customer_id if customer_ids else LINKS.c.hubspot_company_id
    ids = list(customer_ids or company_ids)
    if not ids:
        return {}
    rows = await connection.execute(
        select(column, LINKS.c.last_synced_at).where(
            column.in_(ids), LINKS.c.last_synced_at.is_not(None)
        )
    )
    return {row[0]: as_utc(row[1]) for row in rows}


def _watermark(row: Any) -> Watermark:
    return Watermark(
        row["source"], maybe_utc(row["watermark"]), row["queued"], maybe_utc(row["updated_at"])
    )
