"""`hubsync status`: the operator's one look — the HubSpot portal the database is bound to,
paused directions, queue, failures, conflicts, HubSpot's rate limit in use, the last and the
next reconciliation, the scheduled jobs (last run, last success, late) — read from the
database the service uses. The portal comes from the database, not from this shell's
settings: an operator's shell without HUBSYNC_MODE=demo still learns the links belong to
the sandbox."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.cli.common import add_json_flag, load_settings, print_json, run_on_database
from app.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Subcommands

RECENT_FAILURES = 5


def register(commands: Subcommands) -> None:
    status = commands.add_parser(
        "status",
        help="queue, failures, conflicts, rate-limit use, the last reconciliation, scheduled jobs",
        description="Read the service's database and say how the sync is doing.",
    )
    add_json_flag(status)
    status.set_defaults(run=run_status)


def run_status(args: argparse.Namespace) -> int:
    report = run_on_database("status", read_status(load_settings()))
    if args.json:
        print_json(report)
    else:
        print(format_status(report))
    return 0


async def read_status(settings: Settings) -> dict[str, Any]:
    from app.api.metrics_exposition import rate_limits_of
    from app.store.console import FailedFilter, failed_jobs
    from app.store.db import create_engine
    from app.store.operations import read_snapshot
    from app.store.pauses import paused_directions
    from app.store.portal import recorded_portal

    engine = create_engine(settings.database_url.reveal(), pool_size=1)
    try:
        async with engine.connect() as connection:
            snapshot = await read_snapshot(connection, rate_limits_of(settings))
            failures = await failed_jobs(connection, FailedFilter(), limit=RECENT_FAILURES)
            portal = await recorded_portal(connection)
            pauses = await paused_directions(connection)
    finally:
        await engine.dispose()
    report = snapshot.to_json()
    report["hubspot"] = "sandbox" if settings.sandbox_mode else settings.hubspot_base_url
    report["portal"] = (
        None
        if portal is None
        else {"kind": portal.kind, "portal_id": portal.portal_id, "name": str(portal)}
    )
    report["paused"] = [pause.to_json() for pause in pauses.values()]
    report["next_reconciliation"] = next_reconciliation(settings, report["scheduled_jobs"])
    report["recent_failures"] = [
        {
            "job_id": job.id,
            "entity": f"{job.entity_type} {job.entity_key}",
            "direction": job.direction,
            "attempts": job.attempts,
            "error_kind": job.last_error_kind,
            "error": job.last_error,
            "failed_at": (job.finished_at or job.updated_at).isoformat(),
        }
        for job in failures
    ]
    return report


def next_reconciliation(settings: Settings, scheduled: list[dict[str, Any]]) -> str | None:
    """When the daily run fires next: as the running scheduler recorded it, else from
    HUBSYNC_RECONCILE_CRON (UTC); None when no run is scheduled."""
    from app.sync.reconcile.schedule import DAILY_JOB_ID

    for job in scheduled:
        if job["job"] == DAILY_JOB_ID and job["next_fire_at"]:
            return str(job["next_fire_at"])
    if settings.reconcile_cron is None:
        return None
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(settings.reconcile_cron, timezone=UTC)
    fire = trigger.get_next_fire_time(None, datetime.now(UTC))
    return None if fire is None else fire.isoformat()


def portal_line(report: dict[str, Any]) -> str:
    portal = report["portal"]
    if portal is None:
        return f"not bound yet (no sync has run); configured: {report['hubspot']}"
    if portal["kind"] == "sandbox":
        return str(portal["name"])
    return f"{portal['name']} at {report['hubspot']}"


def format_status(report: dict[str, Any]) -> str:
    queue = report["queue"]
    paused = "; ".join(
        f"{pause['label']} by {pause['paused_by']} since {pause['paused_at']}"
        + (f" ({pause['reason']})" if pause["reason"] else "")
        for pause in report["paused"]
    )
    lines = [
        f"HubSpot:    {portal_line(report)}",
        f"paused:     {paused or 'none'}",
        "queue:      "
        + ", ".join(
            f"{queue[state]['total']} {state}" for state in ("pending", "running", "failed")
        )
        + f"; oldest waiting {report['oldest_waiting_seconds']:.1f} s",
        f"conflicts:  {report['open_conflicts']} open",
        f"webhooks:   {report['failed_webhook_events']} failed event(s)",
    ]
    for use in report["rate_limits"]:
        used = "not shared (one process)" if use["in_window"] is None else use["in_window"]
        paused = f", paused {use['paused_for_seconds']:.0f} s" if use["paused_for_seconds"] else ""
        lines.append(
            f"rate limit: {use['bucket']}: {used} of {use['limit']} per "
            f"{use['window_seconds']:g} s{paused}"
        )
    last = report["last_reconciliation"]
    lines.append(
        "reconciled: never"
        if last is None
        else f"reconciled: run {last['id']} ({last['mode']}) {last['status']}, "
        f"started {last['started_at']}"
    )
    lines.append(f"next reconciliation: {report['next_reconciliation'] or 'none scheduled'}")
    for job in report["scheduled_jobs"]:
        lines.append(f"scheduled:  {scheduled_line(job)}")
    for failure in report["recent_failures"]:
        lines.append(
            f"failed:     job {failure['job_id']} {failure['entity']} "
            f"({failure['error_kind'] or 'error'}): {failure['error']}"
        )
    return "\n".join(lines)


def scheduled_line(job: dict[str, Any]) -> str:
    """One scheduled job: its trigger, its last run (by which replica, how it went), its last
    success, and LATE when it has not succeeded within twice its period."""
    last = (
        "never ran"
        if job["last_outcome"] is None
        else f"last {job['last_outcome']} at {job['last_finished_at']} on {job['ran_by']}"
    )
    detail = job["last_error"] or job["note"]
    return (
        f"{job['job']} ({job['trigger']}): {last}"
        + (f" ({detail})" if detail else "")
        + f"; last success {job['last_success_at'] or 'never'}; next {job['next_fire_at']}"
        + ("; LATE" if job["late"] else "")
    )
