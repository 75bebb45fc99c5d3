"""The reports' outbox (`hubsync_report_deliveries`): a report is a row per destination,
written before anything is sent, so a destination that is down delays it and loses nothing.

`offer` writes a report once whichever replica offers it (the unique key and destination);
`claim_due` takes the rows whose attempt is due, each by a conditional UPDATE that also
pushes its next attempt a lease ahead, so two replicas never send one row at the same time
and a process that dies mid-send leaves the row to be tried again; `mark_sent`,
`mark_retry` and `mark_given_up` record how the attempt went. `delivery_figures` is the
dashboard's view, `prune_deliveries` the retention.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store.models import ReportDelivery, table_of
from app.store.queue.records import as_utc, maybe_utc
from app.store.upsert import insert_for

DELIVERIES = table_of(ReportDelivery)

PENDING, SENT, FAILED = "pending", "sent", "failed"
STATES = (PENDING, SENT, FAILED)
ERROR_TEXT_LIMIT = 1000


@dataclass(frozen=True)
class Delivery:
    id: int
    key: str
    destination: str
    kind: str
    summary: dict[str, Any]
    run_id: int | None
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime | None
    sent_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment is not None else None

        return {
            "id": self.id,
            "report": self.key,
            "kind": self.kind,
            "destination": self.destination,
            "state": self.state,
            "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at) if self.state == PENDING else None,
            "last_error": self.last_error,
            "created_at": iso(self.created_at),
            "sent_at": iso(self.sent_at),
        }


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row["id"],
        key=row["key"],
        destination=row["destination"],
        kind=row["kind"],
        summary=dict(row["summary"] or {}),
        run_id=row["run_id"],
        state=row["state"],
        attempts=int(row["attempts"]),
        next_attempt_at=as_utc(row["next_attempt_at"]),
        last_error=row["last_error"],
        created_at=maybe_utc(row["created_at"]),
        sent_at=maybe_utc(row["sent_at"]),
    )


async def offer(
    engine: AsyncEngine,
    key: str,
    *,
    kind: str,
    summary: dict[str, Any],
    destinations: Iterable[str],
    now: datetime,
    run_id: int | None = None,
) -> int:
    """Put the report `key` in the outbox for each destination it is not in yet; how many
    rows this call wrote (0: already offered, by this replica or another)."""
    written = 0
    async with engine.begin() as connection:
        for destination in destinations:
            result = await connection.execute(
                insert_for(connection, DELIVERIES)
                .values(
                    key=key,
                    destination=destination,
                    kind=kind,
                    summary=summary,
                    run_id=run_id,
                    state=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["key", "destination"])
            )
            written += result.rowcount or 0
    return written


async def was_offered(connection: AsyncConnection, key: str) -> bool:
    found = await connection.scalar(select(DELIVERIES.c.id).where(DELIVERIES.c.key == key).limit(1))
    return found is not None


async def claim_due(
    engine: AsyncEngine,
    now: datetime,
    *,
    destinations: Sequence[str],
    lease: timedelta,
    limit: int = 20,
) -> list[Delivery]:
    """The pending rows for `destinations` due by `now`, each claimed for `lease` (its
    attempt counted). A replica claims only what it can send (during a rollout that adds a
    destination, the replicas that have it send its rows)."""
    async with engine.connect() as connection:
        rows = (
            (
                await connection.execute(
                    select(DELIVERIES)
                    .where(
                        DELIVERIES.c.state == PENDING,
                        DELIVERIES.c.next_attempt_at <= now,
                        DELIVERIES.c.destination.in_(list(destinations)),
                    )
                    .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
                    .limit(limit)
                )
            )
            .mappings()
            .all()
        )
    claimed = []
    for row in rows:
        async with engine.begin() as connection:
            result = await connection.execute(
                update(DELIVERIES)
                .where(
                    DELIVERIES.c.id == row["id"],
                    DELIVERIES.c.state == PENDING,
                    DELIVERIES.c.attempts == row["attempts"],
                )
                .values(attempts=row["attempts"] + 1, next_attempt_at=now + lease)
            )
        if result.rowcount:
            claimed.append(_delivery({**row, "attempts": row["attempts"] + 1}))
    return claimed


async def mark_sent(engine: AsyncEngine, delivery_id: int, now: datetime) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == delivery_id)
            .values(state=SENT, sent_at=now, last_error=None)
        )


async def mark_retry(
    engine: AsyncEngine, delivery_id: int, *, error: str, next_attempt_at: datetime
) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == delivery_id, DELIVERIES.c.state == PENDING)
            .values(last_error=error[:ERROR_TEXT_LIMIT], next_attempt_at=next_attempt_at)
        )


async def mark_given_up(engine: AsyncEngine, delivery_id: int, *, error: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == delivery_id, DELIVERIES.c.state == PENDING)
            .values(state=FAILED, last_error=error[:ERROR_TEXT_LIMIT])
        )


async def delivery_figures(connection: AsyncConnection, *, recent: int = 10) -> dict[str, Any]:
    """For the dashboard: rows per state and the latest deliveries, newest first."""
    counts = dict.fromkeys(STATES, 0)
    for state, count in await connection.execute(
        select(DELIVERIES.c.state, func.count()).group_by(DELIVERIES.c.state)
    ):
        counts[state] = int(count)
    rows = (
        await connection.execute(select(DELIVERIES).order_by(DELIVERIES.c.id.desc()).limit(recent))
    ).mappings()
    return {"by_state": counts, "recent": [_delivery(row).to_json() for row in rows]}


async def prune_deliveries(engine: AsyncEngine, older_than: datetime) -> int:
    """Rows created before `older_than`: sent, given up, or still pending for a destination
    no replica has any more (retries give up within hours, so nothing else is that old)."""
    async with engine.begin() as connection:
        result = await connection.execute(
            delete(DELIVERIES).where(DELIVERIES.c.created_at < older_than)
        )
    return int(result.rowcount or 0)
