"""Holding a claimed job's lease while its work runs: one heartbeat for every holder.

The worker, the immediate-sync route (`POST /v1/sync/customers/{id}/to-hubspot`) and a
conflict's resolution (app/sync/operator/resolution.py) hold leases; all renew them with
`heartbeat`, every third of the lease. If a renewal cannot be made
in time (the database is unreachable) or the jobs were taken from us (rescued after a pause),
the work is cancelled before the lease ends, so two holders never sync one entity at once.
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
    Stopped by an event rather than by cancellation, so a renewal is never cut off halfway
    through its database call (which would leave the connection unreturned)."""
    loop = asyncio.get_running_loop()
    interval = lease_seconds / 3
    last_renewed = loop.time()
    wanted = set(job_ids)
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
        if stop.is_set():
            return
        try:
            held = await queue.extend_lease(holder, list(job_ids), lease_seconds)
        except Exception:
            log.warning("heartbeat of %s failed", holder, exc_info=True)
            if loop.time() - last_renewed > lease_seconds * 0.8:
                log.error(  # noqa: TRY400 -- the traceback was logged just above
                    "%s cannot renew its lease; cancelling its batch", holder
                )
                work.cancel()
                return
            continue
        last_renewed = loop.time()
        if held != wanted:
            log.error("%s lost %d job(s) to a rescue; cancelling", holder, len(wanted - held))
            work.cancel()
            return


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
