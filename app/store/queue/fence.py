"""Fencing a holder's writes with its claim (Kleppmann's fencing token).

A lease only protects anything if a holder that lost it stops writing. The heartbeat cancels
work that cannot renew in time (app/sync/worker/lease.py), but a process that was paused (a
stalled socket, GC, SIGSTOP) can wake after its lease is gone, while another worker holds the
job. So every claim of a job row takes a number that only grows (`claim`), and before each
write the holder asks the database whether its claim is still the current one: before calling
HubSpot (which cannot check a token), before writing WARP, and in the very transaction that
records links and field state. A stale holder is refused and writes nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.sql import any_param, postgres_sql
from app.store.queue.records import QUEUE, RUNNING, SQL_STATE
from app.sync.core.jobs import ClaimedJob


async def held_claims(connection: AsyncConnection, jobs: Sequence[ClaimedJob]) -> set[int]:
    """The ids of `jobs` whose row is still running under the claim they were handed out
    with. On PostgreSQL those rows stay share-locked until the caller's transaction ends, so
    a rescue (which skips locked rows) cannot take them while the caller writes. Work that is
    not a queue job (claim 0: nothing can claim it twice) is always held."""
    fenced = {job.id: job.claim for job in jobs if job.claim > 0}
    held = {job.id for job in jobs if job.claim <= 0}
    if not fenced:
        return held
    # By id (one array parameter), the claim compared here: a row whose claim moved on is
    # still share-locked for the rest of the transaction, which only delays its new holder's
    # completion by as much.
    if connection.dialect.name == "postgresql":  # every batch, twice: straight from asyncpg
        rows: Any = await _HELD_POSTGRES.run(connection, ids=sorted(fenced))
    else:
        rows = await connection.execute(
            select(QUEUE.c.id, QUEUE.c.claim).where(
                QUEUE.c.state == SQL_STATE[RUNNING], QUEUE.c.id.in_(sorted(fenced))
            )
        )
    return held | {job_id for job_id, claim in rows if fenced[job_id] == claim}


_HELD_POSTGRES = postgres_sql(
    select(QUEUE.c.id, QUEUE.c.claim)
    .where(QUEUE.c.state == SQL_STATE[RUNNING], any_param(QUEUE.c.id, "ids"))
    .order_by(QUEUE.c.id)
    .with_for_update(read=True, of=QUEUE)
)
