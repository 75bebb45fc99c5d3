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

from sqlalchemy import func, or_, select, update
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
    position: int | None = None  # WARP on PostgreSQL: the transaction-id horizon read up to
    cut_short: int = 0  # windows that could not all be read, so far
    cut_short_at: datetime | None = None
    cut_short_detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        """For the dashboard: how far each side was read, and any window cut short."""
        return {
            "source": self.source,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "position": self.position,
            "queued_last_pass": self.queued,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "windows_cut_short": self.cut_short,
            "last_cut_short": (
                {"at": self.cut_short_at.isoformat(), "detail": self.cut_short_detail}
                if self.cut_short_at
                else None
            ),
        }


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
    connection: AsyncConnection,
    source: str,
    owner: str,
    watermark: datetime,
    queued: int,
    *,
    position: int | None = None,
) -> None:
    """Move the watermark (and WARP's commit-ordered position, when there is one) forward in
    the caller's transaction."""
    values: dict[str, Any] = {
        "watermark": watermark,
        "queued": queued,
        "updated_at": sql_now(connection.dialect),
    }
    if position is not None:
        values["position"] = position
    await connection.execute(
        update(WATERMARKS)
        .where(WATERMARKS.c.source == source, WATERMARKS.c.claimed_by == owner)
        .values(**values)
    )


async def record_cut_short(
    connection: AsyncConnection, source: str, windows: int, detail: str
) -> None:
    """Windows whose results could not all be read: counted, with the latest one's detail,
    where the dashboard shows them."""
    await connection.execute(
        update(WATERMARKS)
        .where(WATERMARKS.c.source == source)
        .values(
            cut_short=func.coalesce(WATERMARKS.c.cut_short, 0) + windows,
            cut_short_at=sql_now(connection.dialect),
            cut_short_detail=detail,
        )
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


@dataclass(frozen=True)
class CompanyRead:
    """A linked company's customer, when a sync last read the company, and when HubSpot
    recorded hubsync's last write of it (None: never)."""

    customer_id: str | None
    read_at: datetime | None
    written_at: datetime | None = None


async def company_reads(
    connection: AsyncConnection, company_ids: Sequence[str]
) -> dict[str, CompanyRead]:
    """By company id: its customer, when a sync last *read* it, and when hubsync last wrote
    it. A write without a read (a field WARP always wins) says nothing of what HubSpot holds:
    only a read covers a change; the write time tells a lagging search hit from news."""
    if not company_ids:
        return {}
    rows = await connection.execute(
        select(
            LINKS.c.hubspot_company_id,
            LINKS.c.warp_customer_id,
            LINKS.c.hubspot_read_at,
            LINKS.c.hubspot_written_at,
        ).where(LINKS.c.hubspot_company_id.in_(list(company_ids)))
    )
    return {row[0]: CompanyRead(row[1], maybe_utc(row[2]), maybe_utc(row[3])) for row in rows}


def _watermark(row: Any) -> Watermark:
    return Watermark(
        row["source"],
        maybe_utc(row["watermark"]),
        row["queued"],
        maybe_utc(row["updated_at"]),
        row["position"],
        row["cut_short"] or 0,
        maybe_utc(row["cut_short_at"]),
        row["cut_short_detail"],
    )
