"""Holding a claimed job's lease while its work runs: one heartbeat for every holder.

The worker, the immediate-sync route (`POST /v1/sync/customers/{id}/to-hubspot`) and a
conflict's resolution (app/sync/operator/resolution.py) hold leases; all renew them with
`heartbeat`, every quarter of the lease. If a renewal cannot be made
in time (the database is unreachable, or the renewal hangs on a lock or a stalled connection:
every renewal is bounded) or the jobs were taken from us (rescued after a pause), the work is
cancelled before the lease ends. A holder that wakes after its lease anyway (a paused process)
is refused by its claim's fencing token (app/store/queue/fence.py), so two holders never
write one entity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from typing import Protocol, TypeVar

from app.errors import HubsyncError

log = logging.getLogger("hubsync.worker")

T = TypeVar("T")


class LeaseHolder(Protocol):
    """The part of `QueueRepository` a lease holder needs."""

    async def extend_lease(
        self, worker_id: str, job_ids: Sequence[int], lease_seconds: float
    ) -> set[int]: ...


class LeaseLostError(HubsyncError, RuntimeError):
    """The work was cancelled because its lease could not be kept."""


# A holder that has not renewed for this share of its lease gives it up and stops: well before
# the lease runs out, so the work is cancelled before anyone else can claim the jobs.
GIVE_UP_SHARE = 0.6
# After a failed renewal, the next try comes this share of the lease later (not a whole
# interval: the deadline above is near).
RETRY_SHARE = 0.1
# Renewals cut off by their deadline, still unwinding (kept so they are not collected).
_ABANDONED: set[asyncio.Task[set[int]]] = set()


async def heartbeat(
    queue: LeaseHolder,
    holder: str,
    job_ids: Sequence[int],
    lease_seconds: float,
    *,
    work: asyncio.Future[T],
    stop: asyncio.Event,
) -> None:
    """Renew the lease of `job_ids` until `stop` is set; cancel `work` when it cannot be kept.

    Every renewal is bounded: it must answer before `GIVE_UP_SHARE` of the lease has passed
    since the last good one, or the lease counts as lost. A renewal can hang far longer than
    the lease (a row lock, a stalled TCP connection), and an unbounded one would let the
    work write on after another worker claimed its jobs. The renewal runs as a task of its
    own that is abandoned (cancelled, not awaited) at the deadline, so even a connection
    whose cleanup hangs cannot hold the heartbeat past it."""
    loop = asyncio.get_running_loop()
    interval = lease_seconds / 4
    last_renewed = loop.time()
    next_beat = last_renewed + interval
    wanted = set(job_ids)
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(next_beat - loop.time(), 0)):
                await stop.wait()
        if stop.is_set():
            return
        deadline = last_renewed + lease_seconds * GIVE_UP_SHARE
        held = await _renew(queue, holder, list(job_ids), lease_seconds, deadline - loop.time())
        if held is None:
            if loop.time() >= deadline - lease_seconds * RETRY_SHARE:
                log.error(
                    "%s could not renew its lease within %.1f s; cancelling its batch",
                    holder,
                    lease_seconds * GIVE_UP_SHARE,
                )
                work.cancel()
                return
            next_beat = loop.time() + lease_seconds * RETRY_SHARE
            continue
        last_renewed = loop.time()
        next_beat = last_renewed + interval
        if held != wanted:
            log.error("%s lost %d job(s) to a rescue; cancelling", holder, len(wanted - held))
            work.cancel()
            return


async def _renew(
    queue: LeaseHolder, holder: str, job_ids: list[int], lease_seconds: float, within: float
) -> set[int] | None:
    """The ids still held, or None when the renewal failed or did not answer `within` s."""
    if within <= 0:
        return None
    renewal = asyncio.create_task(queue.extend_lease(holder, job_ids, lease_seconds))
    done, _ = await asyncio.wait({renewal}, timeout=within)
    if renewal not in done:
        log.warning("heartbeat of %s did not answer within %.2f s", holder, within)
        renewal.cancel()
        _ABANDONED.add(renewal)
        renewal.add_done_callback(_forget)
        return None
    if renewal.exception() is not None:
        log.warning("heartbeat of %s failed", holder, exc_info=renewal.exception())
        return None
    return renewal.result()


def _forget(task: asyncio.Task[set[int]]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned renewal's error was already reported


async def holding_lease(
    queue: LeaseHolder,
    holder: str,
    job_ids: Sequence[int],
    lease_seconds: float,
    work: Awaitable[T],
) -> T:
    """Await `work` while heartbeating its lease; `LeaseLostError` when the lease was lost.
    Cancelling the caller cancels the work too."""
    task = asyncio.ensure_future(work)
    stop = asyncio.Event()
    beat = asyncio.create_task(
        heartbeat(queue, holder, job_ids, lease_seconds, work=task, stop=stop)
    )
    try:
        await asyncio.wait({task})
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(beat, task, return_exceptions=True)
    if task.cancelled():
        raise LeaseLostError(f"{holder} lost its lease on job(s) {list(job_ids)}")
    return task.result()
