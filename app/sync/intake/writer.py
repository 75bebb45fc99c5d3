"""Group commit for the webhook intake: deliveries that arrive together share one transaction.

Each delivery's own transaction costs about ten database round trips and a commit, which
bounds a process at a few hundred deliveries a second however cheap the rest is. Here one
writer task takes every delivery waiting at the moment it is free (up to `max_deliveries`
and `max_events`; optionally after a short `max_wait_seconds` to let a group fill), stores and
queues them all with `accept_deliveries` in ONE transaction, and only then resolves each
delivery's future. So at low load a delivery is written at once, alone; under load the groups
grow by themselves while the previous commit runs. (`writers` > 1 runs that many such tasks,
overlapping one group's commit with the next group's statements; measured on 2 cores it cost
more CPU in smaller groups than it gained, so the default is one: bench/README.md.)

The guarantees of one delivery per transaction still hold for every member:

* its future resolves with its summary only after the shared COMMIT succeeded (the handler
  answers 2xx only then); when the transaction fails, every member fails — nothing of the
  group is stored, and each answers 503 so HubSpot retries it;
* an event repeated within the group is stored once (deduplicated by content key before the
  insert, and `ON CONFLICT DO NOTHING` against what is already stored or is being stored by
  another process);
* its work is queued in that same transaction.

One bad member must not fail its neighbours forever: when a group fails for a reason other
than the database being unreachable (a constraint, a deadlock with another replica, a bug),
its members are retried one transaction each, so only the bad one fails. A connection found
broken is retried once as a whole (the pool has been refreshed by then; see
app/store/db.py). `stop()` refuses new deliveries and drains those already waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import HubsyncError
from app.store.db import each_statement_committed
from app.sync.core.events import IncomingEvent
from app.sync.intake.routing import (
    BulkEnqueue,
    DeliverySummary,
    accept_deliveries,
    accept_deliveries_at_once,
    can_accept_at_once,
)

log = logging.getLogger("hubsync.webhooks")

MAX_DELIVERIES = 64
MAX_EVENTS = 2000  # a group of 100-event deliveries stays a few round trips of rows
TRANSACTION_TIMEOUT_SECONDS = 4.0
WRITERS = 1


class IntakeUnavailableError(HubsyncError):
    """The delivery was not stored (the database failed or the intake is shutting down)."""


@dataclass
class _Delivery:
    events: Sequence[IncomingEvent]
    future: asyncio.Future[DeliverySummary]


@dataclass
class IntakeStats:
    """Counters for tests and the benchmark: how deliveries were grouped."""

    groups: int = 0
    deliveries: int = 0
    largest_group: int = 0
    failed_groups: int = 0
    split_groups: int = 0
    # the sizes of the latest groups, oldest first (bounded: the service runs for months)
    recent_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1000))


class IntakeWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        queue: BulkEnqueue,
        *,
        app_id: str | None,
        max_deliveries: int = MAX_DELIVERIES,
        max_events: int = MAX_EVENTS,
        max_wait_seconds: float = 0.0,
        timeout_seconds: float = TRANSACTION_TIMEOUT_SECONDS,
        writers: int = WRITERS,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.app_id = app_id
        self.max_deliveries = max_deliveries
        self.max_events = max_events
        self.max_wait_seconds = max_wait_seconds
        self.timeout_seconds = timeout_seconds
        self.writers = writers
        self.stats = IntakeStats()
        self._postgres = engine.dialect.name == "postgresql"
        # Bounded: past this many waiting deliveries, callers wait to enter (and time out
        # into a 503) rather than the process queueing without limit.
        self._inbox: asyncio.Queue[_Delivery | None] = asyncio.Queue(maxsize=16 * max_deliveries)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name=f"hubsync-intake-writer-{n}")
                for n in range(self.writers)
            ]

    async def stop(self) -> None:
        """Refuse new deliveries, write every one already waiting, then end the tasks."""
        if self._closing:
            return
        self._closing = True
        if not self._tasks:
            return
        for _ in self._tasks:
            await self._inbox.put(None)  # after everything already waiting: one per writer
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_waiting()  # none by now, unless a writer died; nobody may wait forever
        log.info(
            "webhook intake stopped: %d deliveries written in %d transactions (largest %d)",
            self.stats.deliveries,
            self.stats.groups,
            self.stats.largest_group,
        )

    async def submit(self, events: Sequence[IncomingEvent]) -> DeliverySummary:
        """Store a verified delivery and queue its work; returns after the commit.

        Raises `IntakeUnavailableError` when it was not stored; a caller that gives up
        waiting (a timeout, a cancel) may still see it stored — HubSpot's retry of it is
        then recognised as a duplicate.
        """
        if self._closing or not self.running:
            raise IntakeUnavailableError("the webhook intake is shutting down")
        delivery = _Delivery(events, asyncio.get_running_loop().create_future())
        await self._inbox.put(delivery)
        return await delivery.future

    def _fail_waiting(self) -> None:
        while not self._inbox.empty():
            waiting = self._inbox.get_nowait()
            if waiting is not None:
                _fail(waiting, IntakeUnavailableError("the webhook intake stopped"))

    async def _run(self) -> None:
        try:
            while True:
                first = await self._inbox.get()
                if first is None:
                    return
                if self.max_wait_seconds > 0:
                    await asyncio.sleep(self.max_wait_seconds)
                group, stopping = self._collect(first)
                await self._write(group)
                if stopping:
                    return
        except BaseException:
            # Cancelled or broken: whoever waits must hear of it rather than time out.
            self._fail_waiting()
            raise

    def _collect(self, first: _Delivery) -> tuple[list[_Delivery], bool]:
        group = [first]
        events = len(first.events)
        while len(group) < self.max_deliveries and events < self.max_events:
            try:
                item = self._inbox.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is None:
                return group, True
            group.append(item)
            events += len(item.events)
        return group, False

    async def _write(self, group: list[_Delivery]) -> None:
        live = [d for d in group if not d.future.done()]  # a caller may have given up
        if not live:
            return
        self.stats.groups += 1
        self.stats.deliveries += len(live)
        self.stats.largest_group = max(self.stats.largest_group, len(live))
        self.stats.recent_sizes.append(len(live))
        try:
            summaries = await self._transaction(live, retry_broken_connection=True)
        except asyncio.CancelledError:
            for delivery in live:
                _fail(delivery, IntakeUnavailableError("the webhook intake stopped"))
            raise
        except Exception as exc:  # noqa: BLE001 -- every member must hear of it, none dropped
            self.stats.failed_groups += 1
            _log_failure(exc, len(live))
            if len(live) > 1 and not _database_unreachable(exc):
                self.stats.split_groups += 1
                for delivery in live:
                    await self._write_alone(delivery)
                return
            for delivery in live:
                _fail(delivery, exc)
            return
        for delivery, summary in zip(live, summaries, strict=True):
            if not delivery.future.done():
                delivery.future.set_result(summary)

    async def _write_alone(self, delivery: _Delivery) -> None:
        if delivery.future.done():
            return
        try:
            [summary] = await self._transaction([delivery], retry_broken_connection=False)
        except asyncio.CancelledError:
            _fail(delivery, IntakeUnavailableError("the webhook intake stopped"))
            raise
        except Exception as exc:  # noqa: BLE001 -- the caller hears of it as a 503
            _log_failure(exc, 1)
            _fail(delivery, exc)
            return
        if not delivery.future.done():
            delivery.future.set_result(summary)

    async def _transaction(
        self, group: list[_Delivery], *, retry_broken_connection: bool
    ) -> list[DeliverySummary]:
        try:
            return await self._transaction_once(group)
        except DBAPIError as exc:
            if not (retry_broken_connection and exc.connection_invalidated):
                raise
            log.warning("webhook intake: a pooled connection was broken; retrying once")
            return await self._transaction_once(group)

    async def _transaction_once(self, group: list[_Delivery]) -> list[DeliverySummary]:
        deliveries = [d.events for d in group]
        if self._postgres and can_accept_at_once(deliveries):
            # Two round trips, the write one atomic statement: no BEGIN, no COMMIT.
            async with (
                asyncio.timeout(self.timeout_seconds),
                each_statement_committed(self.engine) as autocommit,
            ):
                return await accept_deliveries_at_once(autocommit, deliveries, app_id=self.app_id)
        async with asyncio.timeout(self.timeout_seconds), self.engine.begin() as connection:
            return await accept_deliveries(
                connection, deliveries, queue=self.queue, app_id=self.app_id
            )


def _database_unreachable(exc: BaseException) -> bool:
    """Whether retrying members one by one is pointless: the database is not answering."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated
    return isinstance(exc, PoolTimeoutError | OSError | TimeoutError)


def _log_failure(exc: BaseException, members: int) -> None:
    what = f"a group of {members} webhook deliveries" if members > 1 else "a webhook delivery"
    if isinstance(exc, DBAPIError | PoolTimeoutError | OSError | TimeoutError):
        log.warning("%s not stored: %s", what, type(exc).__name__)
    else:  # not the database: a bug, worth its traceback
        log.error("%s not stored", what, exc_info=exc)


def _fail(delivery: _Delivery, exc: BaseException) -> None:
    if delivery.future.done():
        return
    failure = IntakeUnavailableError(f"not stored: {type(exc).__name__}")
    failure.__cause__ = exc
    delivery.future.set_exception(failure)
    # Retrieved by the caller normally; a caller that gave up must not leave it unretrieved.
    with contextlib.suppress(BaseException):
        delivery.future.exception()
