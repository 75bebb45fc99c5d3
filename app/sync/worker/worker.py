"""The queue worker: claim a batch, hand it to the sync engine, record what became of each job.

Work is never lost: a handler that raises has every job of its batch retried with the error; a
job the handler forgot is retried; a worker that is stopped hands back what it holds; a worker
that dies is rescued by anyone once its lease runs out. While a batch runs, a heartbeat keeps
its lease alive — and if the heartbeat cannot (the database is unreachable, or the jobs were
rescued meanwhile) the batch is cancelled before the lease ends, so two workers never sync one
entity at once.

The worker wakes at once when told (`wake()`: in-process enqueues, PostgreSQL NOTIFY through
`app/sync/worker/notify.py`), and otherwise polls cheaply every `poll_interval` seconds, which also
picks up retries whose backoff has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from app.store.queue import CompletionSummary, QueueRepository
from app.sync.core.jobs import ClaimedJob, JobHandler, JobOutcome, OutcomeStatus
from app.sync.worker.lanes import Budget, LaneControl
from app.sync.worker.lease import LeaseLostError, holding_lease

log = logging.getLogger("hubsync.worker")

MAX_IDLE_BACKOFF = 30.0  # seconds between tries while the database is unreachable
COMPLETE_TRIES = 3


@dataclass(frozen=True)
class ProcessCounts:
    claimed: int = 0
    done: int = 0
    retried: int = 0
    failed: int = 0
    superseded: int = 0
    ignored: int = 0

    @classmethod
    def of(cls, claimed: int, summary: CompletionSummary) -> ProcessCounts:
        return cls(claimed, **asdict(summary))

    def __add__(self, other: ProcessCounts) -> ProcessCounts:
        mine, theirs = asdict(self), asdict(other)
        return ProcessCounts(**{name: mine[name] + theirs[name] for name in mine})

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def default_worker_id() -> str:
    """Unique per process and readable in `locked_by`: host, pid and a random suffix."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        queue: QueueRepository,
        handler: JobHandler,
        *,
        worker_id: str | None = None,
        batch_size: int = 100,
        lease_seconds: float = 60.0,
        concurrency: int = 1,
        poll_interval: float = 1.0,
        rescue_interval: float | None = None,
        shutdown_timeout: float = 10.0,
        budget: Budget | None = None,
    ) -> None:
        """`concurrency` is the most batches in flight; with a `budget` (the HubSpot rate
        limiter) as many run as keep its limit filled (app/sync/worker/lanes.py), else all of them
        while there is a backlog."""
        if batch_size < 1 or concurrency < 1 or lease_seconds <= 0 or poll_interval <= 0:
            raise ValueError("batch_size, concurrency, lease and poll interval must be positive")
        self.queue = queue
        self.handler = handler
        self.worker_id = worker_id or default_worker_id()
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        # Rescuing is cheap and idempotent; doing it often bounds how long a dead worker's
        # jobs wait beyond their lease.
        self.rescue_interval = rescue_interval or min(max(lease_seconds / 2, 1.0), 15.0)
        self.shutdown_timeout = shutdown_timeout
        self.totals = ProcessCounts()
        # One lane per unit of concurrency, each with its own id in `locked_by`, so a stale
        # outcome of one lane can never be applied to a job another lane holds.
        self._lanes = [f"{self.worker_id}/{n}" for n in range(concurrency)]
        self._wakeups = [asyncio.Event() for _ in self._lanes]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self.lanes = LaneControl(concurrency, budget)

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not self._stopping

    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping = False
        self._stop_requested.clear()
        self._tasks = [
            asyncio.create_task(self._lane(n, lane, wakeup), name=f"hubsync-worker {lane}")
            for n, (lane, wakeup) in enumerate(zip(self._lanes, self._wakeups, strict=True))
        ]
        self._tasks.append(asyncio.create_task(self._rescuer(), name="hubsync-rescuer"))
        log.info("worker %s started (%d lane(s))", self.worker_id, len(self._lanes))

    async def stop(self) -> None:
        """Stop claiming; let running batches finish for up to `shutdown_timeout` seconds,
        then cancel them and hand their jobs back to the queue (attempt unspent)."""
        if not self._tasks:
            return
        self._stopping = True
        self._stop_requested.set()
        self.wake()
        _, unfinished = await asyncio.wait(self._tasks, timeout=self.shutdown_timeout)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for lane in self._lanes:
            try:
                released = await self.queue.release(lane)
            except Exception:
                log.exception("could not release the jobs of %s; their lease will expire", lane)
                continue
            if released:
                log.info("released %d job(s) held by %s", released, lane)
        log.info("worker %s stopped", self.worker_id)

    def wake(self) -> None:
        """Look for work now rather than at the next poll (cheap; call it after enqueueing)."""
        for wakeup in self._wakeups:
            wakeup.set()

    async def process_now(
        self, *, max_jobs: int = 1000, time_budget: float = 20.0
    ) -> ProcessCounts:
        """Rescue expired leases, then work through due jobs in batches until none is due,
        `max_jobs` were claimed or `time_budget` seconds passed."""
        lane = f"{self.worker_id}/now-{uuid.uuid4().hex[:6]}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_budget
        await self.queue.rescue_expired()
        total = ProcessCounts()
        while total.claimed < max_jobs and loop.time() < deadline:
            counts = await self._run_batch(lane, min(self.batch_size, max_jobs - total.claimed))
            if counts.claimed == 0:
                break
            total += counts
        return total

    # -- the loops ---------------------------------------------------------------------------

    async def _lane(self, index: int, lane: str, wakeup: asyncio.Event) -> None:
        # The first lane takes whatever is due; the others join as `self.lanes` allows
        # (app/sync/worker/lanes.py): while a backlog needs them to fill HubSpot's limit, or when
        # jobs arrive while the lanes before them are busy, spaced as the budget allows.
        failures = 0
        woken = True
        while not self._stopping:
            wakeup.clear()  # before claiming: a wake-up during the claim is not missed
            if not self.lanes.may_claim(index, woken):
                woken = await _wait(wakeup, self.poll_interval)
                continue
            delay = self.lanes.claim_delay()
            if delay:  # a trickle gathers while the window fills (app/sync/worker/lanes.py)
                await _wait(self._stop_requested, delay)
                continue
            self.lanes.busy.add(index)
            try:
                counts = await self._run_batch(lane, self.batch_size, woken=woken)
            except Exception:
                failures += 1
                delay = min(self.poll_interval * 2**failures, MAX_IDLE_BACKOFF)
                log.exception("worker lane %s failed; retrying in %.1f s", lane, delay)
                woken = await _wait(wakeup, delay)
                continue
            finally:
                self.lanes.busy.discard(index)
            failures = 0
            woken = False
            if counts.claimed == 0:
                woken = await _wait(wakeup, self.poll_interval)

    async def _rescuer(self) -> None:
        while not self._stopping:
            await _wait(self._stop_requested, self.rescue_interval)
            if self._stopping:
                return
            try:
                if await self.queue.rescue_expired():
                    self.wake()
            except Exception:
                log.exception("rescuing expired leases failed")

    async def _run_batch(self, lane: str, limit: int, *, woken: bool = False) -> ProcessCounts:
        jobs = await self.queue.claim(lane, limit, self.lease_seconds)
        full = len(jobs) >= self.batch_size
        self.lanes.after_claim(len(jobs), full, woken=woken)
        if full:
            self.wake()  # more may be waiting: the lanes allowed to join look now
        if not jobs:
            return ProcessCounts()
        try:
            outcomes = await self._handle(lane, jobs)
        except asyncio.CancelledError:
            # Stopped mid-batch: give the jobs back now rather than after the lease.
            await asyncio.shield(self.queue.release(lane, [job.id for job in jobs]))
            raise
        # Counted in the metrics where the queue records them.
        summary = await self._complete(lane, outcomes, {job.id: job.claim for job in jobs})
        counts = ProcessCounts.of(len(jobs), summary)
        self.totals += counts
        # The counts as fields of their own (JSON logs), never a dict's repr in the message.
        log.info(
            "batch of %d by %s: %d done, %d retried, %d failed",
            len(jobs),
            lane,
            counts.done,
            counts.retried,
            counts.failed,
            extra={"lane": lane, "batch": counts.as_dict()},
        )
        return counts

    async def _handle(self, lane: str, jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        job_ids = [job.id for job in jobs]
        try:
            return await holding_lease(
                self.queue, lane, job_ids, self.lease_seconds, self._call_handler(jobs)
            )
        except LeaseLostError:
            reason = "the worker lost its lease on the batch; it will run again"
            return [_retry(job, reason, "lease_lost") for job in jobs]

    async def _call_handler(self, jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        try:
            outcomes = await self.handler(jobs)
        except Exception as exc:
            log.exception("job handler raised on a batch of %d", len(jobs))
            error = f"the sync handler raised {type(exc).__name__}: {exc}"
            return [_retry(job, error, "handler_error") for job in jobs]
        return _one_outcome_each(jobs, outcomes)

    async def _complete(
        self, lane: str, outcomes: list[JobOutcome], claims: dict[int, int]
    ) -> CompletionSummary:
        for attempt in range(1, COMPLETE_TRIES + 1):
            try:
                # Fenced by the claim: a batch whose jobs were claimed again records nothing.
                return await self.queue.complete(lane, outcomes, claims=claims)
            except Exception:
                # Not recorded: the jobs stay leased and are rescued after the lease, so the
                # work runs again (at-least-once) rather than being lost.
                if attempt == COMPLETE_TRIES:
                    raise
                log.warning("recording outcomes failed (try %d)", attempt, exc_info=True)
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")


def _retry(job: ClaimedJob, error: str, kind: str) -> JobOutcome:
    return JobOutcome(job.id, OutcomeStatus.RETRY, error=error, error_kind=kind)


def _one_outcome_each(
    jobs: Sequence[ClaimedJob], outcomes: Sequence[JobOutcome]
) -> list[JobOutcome]:
    """Exactly one outcome per claimed job: the handler's first, else a retry."""
    given: dict[int, JobOutcome] = {}
    for outcome in outcomes:
        given.setdefault(outcome.job_id, outcome)
    missing = "the sync handler returned no outcome for this job"
    return [given.get(job.id) or _retry(job, missing, "no_outcome") for job in jobs]


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Until `event` is set (True) or `seconds` have passed (False)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()
