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

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.errors import HubsyncError
from app.sql import GatheredWrites, any_param, fetch_postgres, postgres_sql
from app.store.pauses import DIRECTIONS, paused_directions, pauses_table
from app.store.queue.records import QUEUE, RUNNING, SQL_STATE, still_handed
from app.sync.core.jobs import ClaimedJob


async def held_claims_and_pauses(
    connection: AsyncConnection, jobs: Sequence[ClaimedJob]
) -> tuple[set[int], frozenset[str]]:
    """`held_claims`, and the directions paused (`paused_directions`): what is checked right
    before a write to HubSpot or WARP, in one statement on PostgreSQL (the rows share-locked
    for that statement only: the write it guards is outside hubsync's database)."""
    fenced = {job.id: job.claim for job in jobs if job.claim > 0}
    if connection.dialect.name != "postgresql" or not fenced:
        held = await held_claims(connection, jobs)
        return held, frozenset(await paused_directions(connection))
    rows: Any = await _HELD_AND_PAUSED_POSTGRES.run(connection, ids=sorted(fenced))
    held = {job.id for job in jobs if job.claim <= 0}
    held |= {row["id"] for row in rows if fenced[row["id"]] == row["claim"]}
    if rows:
        paused = frozenset(d for d in rows[0]["paused"] or () if d in DIRECTIONS)
    elif held:  # work that is not a queue job, none of the jobs' rows found: ask apart
        paused = frozenset(await paused_directions(connection))
    else:  # nothing is held, nothing will be written
        paused = frozenset()
    return held, paused


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


def _held_rows(*also: Any) -> Any:
    """The running rows of the jobs `ids` (their id and claim, and `also`), share-locked in
    id order."""
    return (
        select(QUEUE.c.id, QUEUE.c.claim, *also)
        .where(QUEUE.c.state == SQL_STATE[RUNNING], any_param(QUEUE.c.id, "ids"))
        .order_by(QUEUE.c.id)
        .with_for_update(read=True, of=QUEUE)
    )


_HELD_POSTGRES = postgres_sql(_held_rows())
_HELD_AND_PAUSED_POSTGRES = postgres_sql(
    _held_rows(select(func.array_agg(pauses_table.c.direction)).scalar_subquery().label("paused"))
)


class ClaimsMovedError(HubsyncError):
    """Not every job was still held under its claim: nothing of `write_if_all_held`'s was
    written."""


_CLAIMS_MOVED = "hubsync: a claim moved on, nothing was written"


async def write_if_all_held(
    connection: AsyncConnection, jobs: Sequence[ClaimedJob], writes: GatheredWrites
) -> None:
    """`writes` (gathered on PostgreSQL, `app.sql.gathered_writes`) in one statement, on an
    autocommit `connection`, fenced as `held_claims` fences a transaction: the jobs' rows are
    share-locked first (in id order), and the writes are made only if every job is still
    running under its claim, the locks held until they commit. Otherwise the statement fails
    whole, nothing is written, and `ClaimsMovedError` is raised: the caller does the work the
    ordinary way, which records the jobs still held and refuses the others."""
    fenced = {job.id: job.claim for job in jobs if job.claim > 0}
    ids = sorted(fenced)
    statement, values = writes.with_writes(
        [
            (
                "held",
                _ALL_HELD_POSTGRES.sql,
                _ALL_HELD_POSTGRES.args(ids=ids, claims=[fenced[i] for i in ids]),
            )
        ],
        # A count short of the jobs' makes the text no integer: the statement, and every write
        # in it, fails, with this message.
        "SELECT CAST(CASE WHEN count(*) = $1 THEN '0'"
        f" ELSE '{_CLAIMS_MOVED}' END AS INTEGER) FROM held",
    )
    try:
        await fetch_postgres(connection, statement, *values, len(ids))
    except DBAPIError as error:
        if _CLAIMS_MOVED in str(error.orig):
            raise ClaimsMovedError(_CLAIMS_MOVED) from None
        raise


# The rows of the jobs handed out still running under their claim, share-locked in id order
# (as `held_claims` locks them).
_ALL_HELD_POSTGRES = postgres_sql(still_handed().with_for_update(read=True, of=QUEUE))
