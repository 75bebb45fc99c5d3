"""Start and stop reconciliation inside the service's lifespan.

`start_reconciliation(context, client)` fills the context's slots:

    reconciler  Reconciler   always (the API starts runs through it)
    catchup     CatchUp      always (its scheduled pass runs only with the scheduler)

and, when this process runs the scheduler, adds the daily run, the takeover check, the
catch-up and the pruning to it.
"""

from __future__ import annotations

from datetime import timedelta

from app.context import AppContext, require
from app.sync.reconcile.catchup import CatchUp
from app.sync.reconcile.full_run import ReconcileHubSpot
from app.sync.reconcile.schedule import schedule_reconciliation
from app.sync.reconcile.service import Reconciler
from app.sync.schedule.runtime import wake_worker


async def start_reconciliation(context: AppContext, client: ReconcileHubSpot) -> Reconciler:
    settings = context.settings

    def wake() -> None:
        wake_worker(context)

    queue = require(context.queue, "queue")
    reconciler = Reconciler(
        engine=context.engine,
        warp=context.warp,
        hubspot=client,
        queue=queue,
        lease_seconds=settings.reconcile_lease_seconds,
        after_commit=wake,
        time_share=settings.reconcile_rate_share,
    )
    catchup = CatchUp(
        engine=context.engine,
        warp=context.warp,
        hubspot=client,
        queue=queue,
        owner=reconciler.owner,
        interval_seconds=settings.catchup_interval_seconds or 300.0,
        overlap_seconds=settings.catchup_overlap_seconds,
        after_commit=wake,
    )
    context.reconciler, context.catchup = reconciler, catchup
    scheduler = context.scheduler
    if scheduler is not None:
        await schedule_reconciliation(
            scheduler,
            reconciler,
            cron=settings.reconcile_cron,
            mode=settings.reconcile_mode,
            catchup=catchup,
            catchup_interval=settings.catchup_interval_seconds,
            retention=timedelta(seconds=settings.reconcile_retention_seconds),
            prune_interval=settings.prune_interval_seconds,
            book=context.job_book,
        )
    return reconciler


async def stop_reconciliation(context: AppContext) -> None:
    reconciler, context.reconciler = context.reconciler, None
    if reconciler is not None:
        await reconciler.stop()
