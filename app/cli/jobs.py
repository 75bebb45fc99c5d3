"""`hubsync jobs retry`: run failed work again — every failed job, or one customer's (queued
afresh when it has none failed)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from app.cli.common import (
    CommandError,
    add_json_flag,
    load_settings,
    print_json,
    run_on_database,
)
from app.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Subcommands

MAX_FAILED_PER_CUSTOMER = 1000


def register(commands: Subcommands) -> None:
    jobs = commands.add_parser("jobs", help="the sync queue's jobs (retry)")
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    retry = actions.add_parser(
        "retry",
        help="run failed jobs again, or sync customers again",
        description=(
            "--failed: every failed job back to the queue, attempts reset. --customer ID: "
            "that customer's failed jobs, or a new job when none failed. Both: only the "
            "customers' failed jobs."
        ),
    )
    retry.add_argument("--failed", action="store_true", help="retry failed jobs")
    retry.add_argument(
        "--customer",
        action="append",
        default=[],
        metavar="ID",
        help="a WARP customer id (repeatable)",
    )
    add_json_flag(retry)
    retry.set_defaults(run=run_retry)


def run_retry(args: argparse.Namespace) -> int:
    if not args.failed and not args.customer:
        print("hubsync jobs retry: give --failed, --customer ID, or both", file=sys.stderr)
        return 2
    try:
        result = run_on_database(
            "jobs retry", retry_jobs(load_settings(), failed=args.failed, customers=args.customer)
        )
    except CommandError as exc:
        print(f"hubsync jobs retry: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(result)
    else:
        print(f"{result['requeued']} failed job(s) back in the queue")
        if result["queued"]:
            print(f"{len(result['queued'])} customer(s) queued afresh: job(s) {result['queued']}")
    return 0


async def retry_jobs(settings: Settings, *, failed: bool, customers: list[str]) -> dict[str, Any]:
    from app.store.console import FailedFilter, failed_jobs
    from app.store.db import create_engine
    from app.store.operations import notify_workers
    from app.store.queue import QueueRepository
    from app.sync.core.jobs import EntityType, JobDirection, JobSource
    from app.warp.connector import SqlWarpConnector

    engine = create_engine(settings.database_url.reveal(), pool_size=1)
    warp_engine = (
        engine
        if settings.effective_warp_database_url == settings.database_url
        else create_engine(settings.effective_warp_database_url.reveal(), pool_size=1)
    )
    queue = QueueRepository(engine)
    try:
        if not customers:
            requeued = await queue.requeue_failed()
            queued: list[int] = []
        else:
            warp = SqlWarpConnector(warp_engine, settings.effective_customers_table)
            known = await warp.existing_ids(customers)  # canonical ids, as jobs are keyed
            keys = {raw: _canonical(raw) for raw in customers}
            unknown = sorted(raw for raw, key in keys.items() if key not in known)
            if unknown:
                raise CommandError(f"no such WARP customer: {', '.join(unknown)}")
            requeued, queued = 0, []
            for customer in dict.fromkeys(keys.values()):
                async with engine.connect() as connection:
                    jobs = await failed_jobs(
                        connection,
                        FailedFilter(customer_id=customer),
                        limit=MAX_FAILED_PER_CUSTOMER,
                    )
                if jobs:
                    requeued += await queue.requeue_failed([job.id for job in jobs])
                elif not failed:
                    async with engine.begin() as connection:
                        enqueued = await queue.enqueue(
                            connection,
                            EntityType.CUSTOMER,
                            customer,
                            priority=1,
                            source=JobSource.OPERATOR,
                            direction=JobDirection.TO_HUBSPOT,
                        )
                    queued.append(enqueued.job_id)
        if requeued:
            await notify_workers(engine)
    finally:
        if warp_engine is not engine:
            await warp_engine.dispose()
        await engine.dispose()
    return {"requeued": requeued, "queued": queued}


def _canonical(customer_id: str) -> str:
    """The id as jobs are keyed (`canonical_id`); blank for text that is no UUID."""
    from app.warp.connector import canonical_id

    try:
        return canonical_id(customer_id)
    except ValueError:
        return ""
