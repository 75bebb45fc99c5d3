"""Start and stop the queue machinery inside the service's lifespan.

`start_runtime(context)` builds the queue repository, the idempotency store, the worker (and,
on PostgreSQL, its LISTEN connection) and the scheduler with the queue's backstop tick, and
puts them in the context's slots:

    queue           QueueRepository         always
    idempotency     IdempotencyRepository   always
    worker          Worker                  always (started only when HUBSYNC_WORKER is on;
                                            POST /v1/sync/process-queue uses it either way)
    queue_listener  QueueListener           PostgreSQL with the worker on
    capture_drain   CaptureDrain            with the worker on: drains WARP's change capture
                                            (idle until `hubsync capture install`), woken by
                                            capture_listener (NOTIFY hubsync_capture on a
                                            PostgreSQL WARP) or its poll (0.2 s on SQLite);
                                            the scheduler drains it too, as a backstop
    scheduler       AsyncIOScheduler        when HUBSYNC_SCHEDULER is on, with the queue's tick
                                            the history pruning (app/store/retention.py) and
                                            the dashboard's minute sampler (sampler.py);
                                            other layers may add their own jobs to it
    job_book        JobBook                 with the scheduler: where every job records its
                                            runs (register jobs with schedule_job only)

The worker sizes its lanes by `context.hubspot_limiter` when the lead layer put the
HubSpot rate limiter there (app/sync/worker/lanes.py): enough batches in flight to fill the limit.

The worker runs whatever handler is in `context.job_handler` at the time of each
batch (the sync engine sets it); without one, every job fails visibly with "no sync engine
configured" rather than being dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, timedelta

from apscheduler.triggers.interval import IntervalTrigger

from app.context import AppContext
from app.store.idempotency import IdempotencyRepository
from app.store.queue import QueueRepository
from app.store.retention import HistoryPruning
from app.sync.core.backoff import RetryPolicy
from app.sync.core.jobs import ClaimedJob, JobHandler, JobOutcome, OutcomeStatus
from app.sync.schedule.registry import JobBook, schedule_job, stop_scheduler
from app.sync.schedule.sampler import schedule_sampler
from app.sync.schedule.scheduler import (
    HISTORY_PRUNING_JOB_ID,
    QUEUE_TICK_JOB_ID,
    QueueTick,
    build_scheduler,
)
from app.sync.worker.capture_drain import CaptureDrain
from app.sync.worker.notify import QueueListener
from app.sync.worker.worker import Worker
from app.warp.capture import NOTIFY_CHANNEL as CAPTURE_CHANNEL
from app.warp.capture import Capture

log = logging.getLogger("hubsync.runtime")

CAPTURE_JOB_ID = "capture-drain"
CAPTURE_BACKSTOP_SECONDS = 60
CAPTURE_POLL_SQLITE = 0.2  # SQLite has no NOTIFY: poll the change table this often
# The trigger sends no NOTIFY unless installed with --notify (NOTIFY was a sixth of its cost
# per UPDATE): the poll finds a change within 0.1 s, two light queries on WARP per poll.
CAPTURE_POLL_POSTGRES = 0.1

NO_ENGINE = "no sync engine configured"


async def fail_without_engine(jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
    return [
        JobOutcome(job.id, OutcomeStatus.FAILED, error=NO_ENGINE, error_kind="not_configured")
        for job in jobs
    ]


def context_handler(context: AppContext) -> JobHandler:
    """The handler the lead layer registered, looked up per batch so start-up order is free."""

    async def handle(jobs: Sequence[ClaimedJob]) -> Sequence[JobOutcome]:
        handler: JobHandler = context.job_handler or fail_without_engine
        return await handler(jobs)

    return handle


async def start_runtime(context: AppContext) -> None:
    settings = context.settings
    queue = QueueRepository(
        context.engine,
        policy=RetryPolicy.from_settings(settings),
        ageing_seconds=settings.queue_ageing_seconds,
    )
    idempotency = IdempotencyRepository(context.engine)
    worker = Worker(
        queue,
        context_handler(context),
        batch_size=settings.worker_batch_size,
        lease_seconds=settings.lease_seconds,
        concurrency=settings.effective_worker_concurrency,
        poll_interval=settings.worker_poll_seconds,
        budget=context.hubspot_limiter,
    )
    context.queue, context.idempotency, context.worker = queue, idempotency, worker
    if settings.worker_enabled:
        await worker.start()
        if context.engine.dialect.name == "postgresql":
            listener = QueueListener(settings.database_url.reveal(), worker.wake)
            await listener.start()
            context.queue_listener = listener
        await start_capture_drain(context, queue, worker)
    if settings.scheduler_enabled:
        scheduler = build_scheduler()
        tick = QueueTick(
            queue=queue,
            worker=worker if settings.worker_enabled else None,
            idempotency=idempotency,
            retention=timedelta(seconds=settings.queue_retention_seconds),
        )
        book = JobBook(context.engine)
        context.job_book = book
        await schedule_job(
            scheduler,
            QUEUE_TICK_JOB_ID,
            "wake the worker, rescue expired leases, prune done jobs",
            IntervalTrigger(seconds=settings.queue_tick_seconds, timezone=UTC),
            tick,
            book=book,
        )
        await schedule_job(
            scheduler,
            HISTORY_PRUNING_JOB_ID,
            "prune old webhook events and sync log entries",
            IntervalTrigger(seconds=settings.prune_interval_seconds, timezone=UTC),
            HistoryPruning(context.engine, timedelta(seconds=settings.history_retention_seconds)),
            book=book,
        )
        await schedule_sampler(scheduler, context.engine, settings.hubspot_rate_limit, book=book)
        if context.capture_drain is not None:
            await schedule_job(
                scheduler,
                CAPTURE_JOB_ID,
                "drain WARP's change capture (backstop of NOTIFY and the poll)",
                IntervalTrigger(seconds=CAPTURE_BACKSTOP_SECONDS, timezone=UTC),
                context.capture_drain,
                book=book,
            )
        scheduler.start()
        context.scheduler = scheduler


async def start_capture_drain(context: AppContext, queue: QueueRepository, worker: Worker) -> None:
    """Drain WARP's change capture into the queue (it stays idle while not installed)."""
    settings = context.settings
    capture = Capture(context.warp_engine, settings.effective_customers_table)
    drain = CaptureDrain(capture, engine=context.engine, queue=queue, after_commit=worker.wake)
    postgres = context.warp_engine.dialect.name == "postgresql"
    await drain.start(CAPTURE_POLL_POSTGRES if postgres else CAPTURE_POLL_SQLITE)
    context.capture_drain = drain
    if postgres:
        listener = QueueListener(
            settings.effective_warp_database_url.reveal(), drain.wake, channel=CAPTURE_CHANNEL
        )
        await listener.start()
        context.capture_listener = listener


async def stop_runtime(context: AppContext) -> None:
    """Stop in reverse: no new ticks, no new wake-ups, then the worker hands back its jobs."""
    scheduler, context.scheduler = context.scheduler, None
    context.job_book = None
    if scheduler is not None:
        await stop_scheduler(scheduler)
    for listener in (context.queue_listener, context.capture_listener):
        if listener is not None:
            await listener.stop()
    context.queue_listener = context.capture_listener = None
    drain, context.capture_drain = context.capture_drain, None
    if drain is not None:
        await drain.stop()
    worker: Worker | None = context.worker
    if worker is not None:
        await worker.stop()


def wake_worker(context: AppContext) -> None:
    """Call after committing an enqueue: this replica's worker looks for work at once."""
    worker: Worker | None = context.worker
    if worker is not None and worker.running:
        worker.wake()
