"""Reconciliation runs and their findings (`hubspot_reconciliation_runs`, `_items`, `_pairs`).

The database decides who runs: a new run is an INSERT that the partial unique index on
`status = 'running'` refuses while another runs (and the unique `fire_key` refuses a second
run for one scheduled fire time). The owner holds a lease it renews; a run whose lease ran
out is taken over by one replica (a conditional UPDATE) and resumed from its checkpoint,
which is written in the same transaction as the findings and queue jobs of the page it
closes, so a page is recorded exactly once whoever finishes the run.

For readers (API, admin UI): `get_run`, `running_run`, `list_runs`, `items_page`,
`iter_items`. For the runner: `start_run`, `take_over_dead_run`, `renew_lease`,
`save_checkpoint`, `finish_run` (and `app.store.reconciliation_pairs`). Retention:
`prune_runs`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.errors import HubsyncError
from app.store import widened
from app.store.models import ReconciliationItem, ReconciliationPair, ReconciliationRun, table_of
from app.store.queue.records import maybe_utc, sql_now

RUNS = table_of(ReconciliationRun)
ITEMS = table_of(ReconciliationItem)
PAIRS = table_of(ReconciliationPair)

# An item's columns that outgrew varchar(64) (app/store/widened.py).
ITEM_TEXTS = ("warp_customer_id", "hubspot_company_id", "warp_ban")

RUNNING, DONE, FAILED = "running", "done", "failed"
ITEM_CHUNK = 1000


class LostRunError(HubsyncError, RuntimeError):
    """This process no longer owns the run (its lease ran out and another took it over)."""


@dataclass(frozen=True)
class RunRecord:
    id: int
    mode: str
    trigger: str
    requested_by: str | None
    status: str
    phase: str
    claimed_by: str | None
    lease_until: datetime | None
    hubspot_after: str | None
    warp_after: str | None
    hubspot_calls: int
    jobs_created: int
    resumed: int
    hubspot_scan: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    hubspot_pages: int | None = None  # pages read so far per side (None: not recorded)
    warp_pages: int | None = None
    fire_key: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_row(cls, row: RowMapping) -> RunRecord:
        return cls(
            id=row["id"],
            mode=row["mode"],
            trigger=row["trigger"],
            requested_by=row["requested_by"],
            status=row["status"],
            phase=row["phase"],
            claimed_by=row["claimed_by"],
            lease_until=maybe_utc(row["lease_until"]),
            hubspot_after=row["hubspot_after"],
            hubspot_scan=dict(row["hubspot_scan"] or {}),
            warp_after=row["warp_after"],
            hubspot_calls=row["hubspot_calls"],
            jobs_created=row["jobs_created"],
            resumed=row["resumed"],
            counts=dict(row["counts"] or {}),
            error=row["error"],
            hubspot_pages=row["hubspot_pages"],
            warp_pages=row["warp_pages"],
            fire_key=row["fire_key"],
            started_at=maybe_utc(row["started_at"]),
            finished_at=maybe_utc(row["finished_at"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mode": self.mode,
            "trigger": self.trigger,
            "requested_by": self.requested_by,
            "state": self.status,
            "phase": self.phase,
            "owner": self.claimed_by,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "counts": self.counts,
            "hubspot_calls": self.hubspot_calls,
            "jobs_created": self.jobs_created,
            "resumed": self.resumed,
            "pages_read": {"hubspot": self.hubspot_pages, "warp": self.warp_pages},
            "error": self.error,
        }


@dataclass(frozen=True)
class Checkpoint:
    """Where a run stands after a page: what a takeover resumes from."""

    phase: str
    hubspot_after: str | None
    warp_after: str | None
    counts: Mapping[str, int]
    hubspot_calls: int
    jobs_created: int
    hubspot_scan: Mapping[str, Any] = field(default_factory=dict)
    hubspot_pages: int = 0
    warp_pages: int = 0


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# -- who runs --------------------------------------------------------------------------------


async def start_run(
    engine: AsyncEngine,
    *,
    mode: str,
    trigger: str,
    owner: str,
    lease_seconds: float,
    requested_by: str | None = None,
    fire_key: str | None = None,
) -> RunRecord | None:
    """A new run owned by `owner`, or None when one is already running (or this scheduled
    fire time already has its run)."""
    try:
        async with engine.begin() as connection:
            now = sql_now(connection.dialect)
            row = (
                (
                    await connection.execute(
                        insert(RUNS)
                        .values(
                            mode=mode,
                            trigger=trigger,
                            requested_by=requested_by,
                            fire_key=fire_key,
                            status=RUNNING,
                            phase="hubspot",
                            claimed_by=owner,
                            lease_until=sql_now(connection.dialect, lease_seconds),
                            heartbeat_at=now,
                            started_at=now,
                            counts={},
                        )
                        .returning(*RUNS.c)
                    )
                )
                .mappings()
                .one()
            )
    except IntegrityError:
        return None
    return RunRecord.from_row(row)


async def take_over_dead_run(
    engine: AsyncEngine, owner: str, lease_seconds: float, *, mode: str | None = None
) -> RunRecord | None:
    """Claim the running run whose owner stopped renewing its lease, if there is one (only
    one of `mode`, when given)."""
    async with engine.begin() as connection:
        dead = [RUNS.c.status == RUNNING, RUNS.c.lease_until < sql_now(connection.dialect)]
        if mode is not None:
            dead.append(RUNS.c.mode == mode)
        row = (
            (
                await connection.execute(
                    update(RUNS)
                    .where(*dead)
                    .values(
                        claimed_by=owner,
                        lease_until=sql_now(connection.dialect, lease_seconds),
                        heartbeat_at=sql_now(connection.dialect),
                        resumed=RUNS.c.resumed + 1,
                    )
                    .returning(*RUNS.c)
                )
            )
            .mappings()
            .first()
        )
    return RunRecord.from_row(row) if row is not None else None


async def renew_lease(engine: AsyncEngine, run_id: int, owner: str, lease_seconds: float) -> bool:
    """Extend the owner's lease; False when the run is no longer this owner's."""
    async with engine.begin() as connection:
        result = await connection.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id, RUNS.c.claimed_by == owner, RUNS.c.status == RUNNING)
            .values(
                lease_until=sql_now(connection.dialect, lease_seconds),
                heartbeat_at=sql_now(connection.dialect),
            )
        )
    return bool(result.rowcount)


async def release_run(engine: AsyncEngine, run_id: int, owner: str) -> None:
    """Shutting down mid-run: let the lease lapse now so another replica resumes at once."""
    async with engine.begin() as connection:
        await connection.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id, RUNS.c.claimed_by == owner, RUNS.c.status == RUNNING)
            .values(lease_until=sql_now(connection.dialect, -1.0))
        )


async def save_checkpoint(
    connection: AsyncConnection,
    run_id: int,
    owner: str,
    checkpoint: Checkpoint,
    lease_seconds: float,
) -> None:
    """Record progress in the caller's transaction (with the page's items and jobs); raise
    `LostRunError`, so the caller's transaction rolls back, when the run is not ours."""
    result = await connection.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.claimed_by == owner, RUNS.c.status == RUNNING)
        .values(
            phase=checkpoint.phase,
            hubspot_after=checkpoint.hubspot_after,
            hubspot_scan=dict(checkpoint.hubspot_scan) or None,
            warp_after=checkpoint.warp_after,
            counts=dict(checkpoint.counts),
            hubspot_calls=checkpoint.hubspot_calls,
            jobs_created=checkpoint.jobs_created,
            hubspot_pages=checkpoint.hubspot_pages,
            warp_pages=checkpoint.warp_pages,
            lease_until=sql_now(connection.dialect, lease_seconds),
            heartbeat_at=sql_now(connection.dialect),
        )
    )
    if not result.rowcount:
        raise LostRunError(f"reconciliation run {run_id} is no longer owned by {owner}")


async def finish_run(
    engine: AsyncEngine,
    run_id: int,
    owner: str,
    *,
    status: str,
    report: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> RunRecord | None:
    async with engine.begin() as connection:
        row = (
            (
                await connection.execute(
                    update(RUNS)
                    .where(RUNS.c.id == run_id, RUNS.c.claimed_by == owner)
                    .values(
                        status=status,
                        phase="done" if status == DONE else RUNS.c.phase,
                        report=dict(report) if report is not None else None,
                        error=error,
                        lease_until=None,
                        finished_at=sql_now(connection.dialect),
                    )
                    .returning(*RUNS.c)
                )
            )
            .mappings()
            .first()
        )
        await connection.execute(delete(PAIRS).where(PAIRS.c.run_id == run_id))
    return RunRecord.from_row(row) if row is not None else None


# -- reading runs ----------------------------------------------------------------------------


async def get_run(connection: AsyncConnection, run_id: int) -> RunRecord | None:
    row = (await connection.execute(select(RUNS).where(RUNS.c.id == run_id))).mappings().first()
    return RunRecord.from_row(row) if row is not None else None


async def running_run(connection: AsyncConnection) -> RunRecord | None:
    query = select(RUNS).where(RUNS.c.status == RUNNING)
    row = (await connection.execute(query)).mappings().first()
    return RunRecord.from_row(row) if row is not None else None


async def run_for_fire_key(connection: AsyncConnection, fire_key: str) -> RunRecord | None:
    """The run started for a scheduled fire time, if any replica started one."""
    query = select(RUNS).where(RUNS.c.fire_key == fire_key)
    row = (await connection.execute(query)).mappings().first()
    return RunRecord.from_row(row) if row is not None else None


async def list_runs(
    connection: AsyncConnection, *, limit: int = 50, before_id: int | None = None
) -> list[RunRecord]:
    """Newest first; page with `before_id` (the last id of the previous page)."""
    query = select(RUNS).order_by(RUNS.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(RUNS.c.id < before_id)
    return [RunRecord.from_row(row) for row in (await connection.execute(query)).mappings()]


async def finished_scheduled_runs(
    connection: AsyncConnection, *, since: datetime, limit: int = 20
) -> list[RunRecord]:
    """Scheduled runs that ended (done or failed) at `since` or later, oldest first: what
    the reports (app/sync/reports/) tell the operator about."""
    query = (
        select(RUNS)
        .where(
            RUNS.c.trigger == "schedule",
            RUNS.c.status.in_([DONE, FAILED]),
            RUNS.c.finished_at >= since,
        )
        .order_by(RUNS.c.finished_at, RUNS.c.id)
        .limit(limit)
    )
    return [RunRecord.from_row(row) for row in (await connection.execute(query)).mappings()]


# -- items -----------------------------------------------------------------------------------


async def add_items(
    connection: AsyncConnection, run_id: int, items: Sequence[Mapping[str, Any]]
) -> None:
    if items:
        await connection.execute(
            insert(ITEMS),
            [widened.written({"run_id": run_id, **item}, ITEM_TEXTS) for item in items],
        )


async def items_page(
    connection: AsyncConnection,
    run_id: int,
    *,
    category: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """One page of a run's items in id order; the next page starts after the last id."""
    query = (
        select(ITEMS)
        .where(ITEMS.c.run_id == run_id, ITEMS.c.id > after_id)
        .order_by(ITEMS.c.id)
        .limit(limit)
    )
    if category is not None:
        query = query.where(ITEMS.c.category == category)
    return [item_json(row) for row in (await connection.execute(query)).mappings()]


async def iter_items(engine: AsyncEngine, run_id: int) -> AsyncIterator[list[dict[str, Any]]]:
    """Every item of a run, a chunk at a time, each chunk on a short-lived connection."""
    after = 0
    while True:
        async with engine.connect() as connection:
            chunk = await items_page(connection, run_id, after_id=after, limit=ITEM_CHUNK)
        if not chunk:
            return
        yield chunk
        after = chunk[-1]["id"]


def item_json(row: RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "category": row["category"],
        **{name: widened.read(row, name) for name in ITEM_TEXTS},
        "fields": list(row["fields"] or []),
        "action": row["action"],
        "detail": row["detail"],
        "job_id": row["job_id"],
    }


# -- retention -------------------------------------------------------------------------------


async def prune_runs(engine: AsyncEngine, older_than: timedelta) -> int:
    """Delete finished runs (and their items) that started longer ago than `older_than`."""
    async with engine.begin() as connection:
        cutoff = sql_now(connection.dialect, -older_than.total_seconds())
        ids = [
            row.id
            for row in await connection.execute(
                select(RUNS.c.id).where(RUNS.c.status != RUNNING, RUNS.c.started_at < cutoff)
            )
        ]
        for start in range(0, len(ids), ITEM_CHUNK):
            chunk = ids[start : start + ITEM_CHUNK]
            await connection.execute(delete(ITEMS).where(ITEMS.c.run_id.in_(chunk)))
            await connection.execute(delete(PAIRS).where(PAIRS.c.run_id.in_(chunk)))
            await connection.execute(delete(RUNS).where(RUNS.c.id.in_(chunk)))
    return len(ids)
