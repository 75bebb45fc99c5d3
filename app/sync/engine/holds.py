"""An operator's pause, where the engine writes: what goes to a paused side is held back.

The claim keeps jobs of a paused direction in the queue, but any job may write both sides —
a company job for a customer WARP changed too, a customer job that read a two-way field, a
job claimed a moment before the pause — so the engine asks the pauses table again right
before it writes HubSpot and again right before it writes WARP (a table of at most two rows).
The decision still runs; the writes to the paused side do not (`Pair.hold`).

Nothing held is lost: the held fields' state is not recorded, and the customer gets a job of
the paused direction in the same transaction as the rest of its sync's records. The claim
holds that job until the resume; it then decides those fields again from both sides as they
are, and writes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.pauses import INBOUND, OUTBOUND, held_job_direction
from app.store.queue import QueueRepository
from app.sync.core.jobs import EntityType
from app.sync.engine.pairs import Pair


def hold_paused(pairs: Iterable[Pair], paused: frozenset[str], *, hubspot: bool = True) -> None:
    """Hold each pair's writes to the paused sides (`hubspot=False`: WARP's only, for the
    check made after HubSpot was written)."""
    to_hubspot = hubspot and OUTBOUND in paused
    to_warp = INBOUND in paused
    if not (to_hubspot or to_warp):
        return
    for pair in pairs:
        if pair.decision is not None:
            pair.hold(hubspot=to_hubspot, warp=to_warp)


def is_held(pair: Pair) -> bool:
    return pair.holds_hubspot or pair.holds_warp


async def queue_held(connection: AsyncConnection, pairs: Sequence[Pair]) -> dict[str, int]:
    """A job of the paused direction for each customer something was held for (merged into
    its pending job, if it has one): customer id -> job id."""
    queue = QueueRepository(connection.engine)
    waiting: dict[str, int] = {}
    for pair in pairs:
        directions = ([OUTBOUND] if pair.holds_hubspot else []) + (
            [INBOUND] if pair.holds_warp else []
        )
        direction = held_job_direction(directions)
        if direction is None:
            continue
        queued = await queue.enqueue(
            connection,
            EntityType.CUSTOMER,
            pair.customer_id,
            priority=min(max(pair.job.priority, 1), 10),
            source=pair.job.source,
            direction=direction,
        )
        waiting[pair.customer_id] = queued.job_id
    return waiting
