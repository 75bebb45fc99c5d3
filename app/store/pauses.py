"""Paused sync directions (`hubsync_paused_directions`): an operator stops one way of the sync
without losing anything. Outbound paused: nothing is written to HubSpot; inbound paused:
nothing is written to WARP.

Two guards, for two reasons. The claim leaves jobs of a paused direction pending (webhooks
are still stored and queued), so a pause costs no work. But any job may write both sides
(a company job whose customer WARP changed too, an outbound job that read a two-way field),
so the engine asks again right before each write and holds what goes to a paused side
(`app.sync.engine.holds`): the open side is written, the rest waits in a job of the paused
direction. A job that goes both ways (`both`) therefore runs while one direction is paused
(it writes the open side) and waits only while both are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from app.errors import HubsyncError
from app.sql import postgres_sql
from app.store.models import DirectionPause, table_of
from app.store.upsert import insert_for
from app.sync.core.jobs import JobDirection

pauses_table = table_of(DirectionPause)

OUTBOUND = "outbound"  # WARP -> HubSpot
INBOUND = "inbound"  # HubSpot -> WARP
DIRECTIONS = (OUTBOUND, INBOUND)
LABELS = {OUTBOUND: "WARP → HubSpot", INBOUND: "HubSpot → WARP"}


class UnknownDirectionError(HubsyncError, ValueError):
    def __init__(self, given: object) -> None:
        super().__init__(f"direction must be one of {', '.join(DIRECTIONS)}, got {given!r}")


def check_direction(value: object) -> str:
    if value not in DIRECTIONS:
        raise UnknownDirectionError(value)
    return str(value)


@dataclass(frozen=True)
class Pause:
    direction: str
    paused_by: str
    reason: str | None
    paused_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "label": LABELS[self.direction],
            "paused_by": self.paused_by,
            "reason": self.reason,
            "paused_at": self.paused_at.isoformat(),
        }


def job_not_paused(job_direction: ColumnElement[Any]) -> ColumnElement[bool]:
    """For the claim query: true when no pause holds a job going `job_direction` (a one-way
    job while its direction is paused, a `both` job while both are).

    `direction NOT IN (<the job directions the pauses hold>)`: an uncorrelated subquery over
    a table of at most two rows, evaluated once per claim (a hashed set on PostgreSQL),
    whatever the planner's statistics say. `direction` is NOT NULL, and the subquery never
    yields NULL, so NOT IN's NULL trap cannot apply."""
    # The two directions written into the SQL (constants, not parameters): the claim is
    # compiled once for asyncpg, which has no expanding `IN` list.
    known = pauses_table.c.direction.in_([literal_column(f"'{d}'") for d in DIRECTIONS])
    one_way = select(
        case(
            (pauses_table.c.direction == OUTBOUND, literal(JobDirection.TO_HUBSPOT.value)),
            else_=literal(JobDirection.TO_WARP.value),
        )
    ).where(known)
    paused_count = select(func.count()).select_from(pauses_table).where(known).scalar_subquery()
    both_ways = select(literal(JobDirection.BOTH.value)).where(paused_count == len(DIRECTIONS))
    return job_direction.not_in(union_all(one_way, both_ways))


def held_job_direction(directions: Iterable[str]) -> JobDirection | None:
    """The direction of the job that waits for these paused directions to be resumed (the
    claim holds it exactly as long): None for none."""
    chosen = set(directions) & set(DIRECTIONS)
    if not chosen:
        return None
    if len(chosen) == len(DIRECTIONS):
        return JobDirection.BOTH
    return JobDirection.TO_HUBSPOT if OUTBOUND in chosen else JobDirection.TO_WARP


async def paused_directions(connection: AsyncConnection) -> dict[str, Pause]:
    """The pauses in force. Every sync batch asks, twice; on PostgreSQL straight from asyncpg."""
    if connection.dialect.name == "postgresql":
        rows: Any = await _PAUSES_POSTGRES.fetch(connection)
    else:
        rows = (row._mapping for row in await connection.execute(_PAUSES))
    return {
        row["direction"]: Pause(
            row["direction"], row["paused_by"], row["reason"], _utc(row["paused_at"])
        )
        for row in rows
        if row["direction"] in DIRECTIONS
    }


_PAUSES = select(pauses_table)
_PAUSES_POSTGRES = postgres_sql(_PAUSES)


async def pause_direction(
    connection: AsyncConnection, direction: str, *, by: str, reason: str | None = None
) -> bool:
    """Pause `direction`; False when it already was (the first pause's record is kept)."""
    statement = insert_for(connection, pauses_table).values(
        direction=check_direction(direction),
        paused_by=by,
        reason=reason,
        paused_at=datetime.now(UTC),
    )
    result = await connection.execute(
        statement.on_conflict_do_nothing(index_elements=["direction"])
    )
    return bool(result.rowcount)


async def resume_direction(connection: AsyncConnection, direction: str) -> bool:
    """Resume `direction`; False when it was not paused."""
    result = await connection.execute(
        pauses_table.delete().where(pauses_table.c.direction == check_direction(direction))
    )
    return bool(result.rowcount)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
