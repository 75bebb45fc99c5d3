"""Reconciliation inside one process: start a run (on demand or at a scheduled fire time),
carry it in the background, take over a run whose process died, and stop cleanly.

Whether a run may start is the database's decision (`app.store.reconciliation.start_run`),
so every replica can be asked and at most one run exists at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import HubsyncError
from app.store import reconciliation as runs
from app.store.queue import QueueRepository
from app.store.reconciliation import RunRecord
from app.sync.reconcile.full_run import MODES, FullRun, Progress, ReconcileHubSpot
from app.warp.connector import WarpConnector

log = logging.getLogger("hubsync.reconcile")


def process_owner() -> str:
    """Names this process in `claimed_by`: host, pid and a random tag (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class UnknownModeError(HubsyncError, ValueError):
    def __init__(self, mode: str) -> None:
        super().__init__(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


@dataclass
class Reconciler:
    engine: AsyncEngine
    warp: WarpConnector
    hubspot: ReconcileHubSpot  # capped to the run's share of HubSpot's window
    queue: QueueRepository
    lease_seconds: float = 60.0
    owner: str = field(default_factory=process_owner)
    after_commit: Callable[[], None] | None = None  # e.g. wake the local worker
    # The most of this process's time a run's judging may take: in `serve`, beside live
    # syncs, the run's share of HubSpot's window (app/sync/reconcile/full_run.py).
    time_share: float = 1.0
    _tasks: dict[int, asyncio.Task[RunRecord | None]] = field(default_factory=dict)

    def full_run(self, on_progress: Callable[[Progress], None] | None = None) -> FullRun:
        return FullRun(
            engine=self.engine,
            warp=self.warp,
            hubspot=self.hubspot,
            queue=self.queue,
            owner=self.owner,
            lease_seconds=self.lease_seconds,
            on_progress=on_progress,
            after_commit=self.after_commit,
            time_share=self.time_share,
        )

    async def claim_new(
        self,
        mode: str,
        trigger: str,
        *,
        requested_by: str | None = None,
        fire_key: str | None = None,
    ) -> RunRecord | None:
        """Record a new run owned by this process; None while another run is running."""
        if mode not in MODES:
            raise UnknownModeError(mode)
        return await runs.start_run(
            self.engine,
            mode=mode,
            trigger=trigger,
            owner=self.owner,
            lease_seconds=self.lease_seconds,
            requested_by=requested_by,
            fire_key=fire_key,
        )

    async def start(
        self,
        mode: str,
        trigger: str,
        *,
        requested_by: str | None = None,
        fire_key: str | None = None,
    ) -> RunRecord | None:
        """Start a run in the background; None while another run is running."""
        record = await self.claim_new(mode, trigger, requested_by=requested_by, fire_key=fire_key)
        if record is not None:
            self._carry(record)
        return record

    async def resume_dead_run(self) -> RunRecord | None:
        """Take over a run whose owner stopped renewing its lease, and carry it on here."""
        record = await runs.take_over_dead_run(self.engine, self.owner, self.lease_seconds)
        if record is not None:
            log.warning(
                "reconciliation run %d: its owner %s went silent; resuming at %s",
                record.id,
                record.claimed_by,
                _position(record),
            )
            self._carry(record)
        return record

    def _carry(self, record: RunRecord) -> None:
        task = asyncio.create_task(self.full_run().execute(record), name=f"reconcile-{record.id}")
        self._tasks[record.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(record.id, None))

    async def wait(self, run_id: int) -> RunRecord | None:
        task = self._tasks.get(run_id)
        return await task if task is not None else None

    async def stop(self) -> None:
        """Shutting down: stop carrying runs and let their leases lapse at once, so another
        replica resumes them from their checkpoints instead of waiting out the lease."""
        tasks = dict(self._tasks)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for run_id in tasks:
            await runs.release_run(self.engine, run_id, self.owner)


def _position(record: RunRecord) -> str:
    if record.phase == "hubspot":
        return f"HubSpot cursor {record.hubspot_after or '(start)'}"
    return f"WARP customer after {record.warp_after or '(start)'}"
