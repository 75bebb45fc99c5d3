"""Drain WARP's change capture (app/warp/capture.py) into the queue, in commit order.

Each pass reads the oldest changes of finished transactions, keeps those that touch a column
the rules map (any insert or delete counts), and in one hubsync transaction enqueues one
coalesced customer job per customer (`QueueRepository.enqueue_many`, source `capture`) and
records each changed column's time (`hubsync_warp_column_changes`, for LATEST_WINS). Only
after that commit are the rows deleted from WARP, in bounded batches. A crash between the two
leaves the rows to be drained again: a duplicate job coalesces, a time only moves forward, so
nothing is lost and nothing is done twice over.

`run` is the service's task: woken by its own poll (every `poll_seconds`: 0.1 s on
PostgreSQL, 0.2 s on SQLite) and by `wake()` (NOTIFY hubsync_capture, when the trigger was
installed with it). The scheduler calls the drain too, as a backstop (`__call__`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.column_changes import note_column_changes
from app.store.queue import QueueRepository
from app.store.sync_config import load_rules
from app.sync.core.jobs import EntityType, JobDirection, JobSource
from app.sync.core.rules import IDENTITY_WARP_FIELD
from app.warp.capture import Capture, Change

log = logging.getLogger("hubsync.capture")

READ_BATCH = 500
JOB_PRIORITY = 4  # a person's edit in WARP: ahead of reconciliation's 6, behind nothing urgent
INSTALLED_RECHECK_SECONDS = 10.0
HELD_RETRY_SECONDS = 0.05


@dataclass(frozen=True)
class Drained:
    changes: int  # rows read and deleted
    customers: int  # customers enqueued
    waiting: bool = False  # changes left behind a transaction still open: drain again soon


class CaptureDrain:
    def __init__(
        self,
        capture: Capture,
        *,
        engine: AsyncEngine,
        queue: QueueRepository,
        after_commit: Callable[[], None] | None = None,
        batch_size: int = READ_BATCH,
    ) -> None:
        self.capture = capture
        self.engine = engine
        self.queue = queue
        self.after_commit = after_commit
        self.batch_size = batch_size
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.drained = 0

    async def __call__(self) -> Drained:
        """Drain everything drainable now (the scheduler's backstop calls this)."""
        if not await self.capture.installed():
            return Drained(0, 0)
        return await self.drain()

    async def drain(self) -> Drained:
        total, customers = 0, 0
        async with self._lock:  # one pass at a time: never two enqueues of one batch
            while True:
                changes = await self.capture.read_changes(self.batch_size)
                if not changes:
                    break
                customers += await self._enqueue(changes)
                await self.capture.delete_changes(changes)
                total += len(changes)
                if len(changes) < self.batch_size:
                    break
            waiting = await self.capture.any_left()
        self.drained += total
        return Drained(total, customers, waiting)

    async def _enqueue(self, changes: list[Change]) -> int:
        async with self.engine.begin() as connection:
            rules = [rule for rule in await load_rules(connection) if rule.enabled]
            synced = {rule.warp_field.partition(".")[0] for rule in rules} | {IDENTITY_WARP_FIELD}
            wanted = [
                c for c in changes if c.operation in ("I", "D") or synced.intersection(c.columns)
            ]
            keys = sorted({c.customer_id for c in wanted})
            if keys:
                await self.queue.enqueue_many(
                    connection,
                    EntityType.CUSTOMER,
                    keys,
                    priority=JOB_PRIORITY,
                    source=JobSource.CAPTURE,
                    direction=JobDirection.TO_HUBSPOT,
                )
            await note_column_changes(
                connection,
                ((c.customer_id, column, c.changed_at) for c in changes for column in c.columns),
            )
        if keys and self.after_commit is not None:
            self.after_commit()
        return len(keys)

    # -- the service's task ----------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def start(self, poll_seconds: float) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(poll_seconds), name="hubsync-capture")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, poll_seconds: float) -> None:
        loop = asyncio.get_running_loop()
        installed, checked = False, float("-inf")
        while True:
            try:
                if not installed and loop.time() - checked >= INSTALLED_RECHECK_SECONDS:
                    installed, checked = await self.capture.installed(), loop.time()
                if installed and (await self.drain()).waiting:
                    # held behind an open transaction (anywhere on the server: the horizon
                    # is the cluster's): look again soon, not at the next poll
                    self._wake.set()
                    await asyncio.sleep(HELD_RETRY_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- WARP away or capture removed: try later
                log.warning("capture drain failed (%s: %s); retrying", type(exc).__name__, exc)
                installed, checked = False, float("-inf")
                await asyncio.sleep(min(5.0, poll_seconds * 10))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
