"""What a report says, once for every destination: a title, a plain text body (Slack reads
it as its `text`; the e-mail is it) and structured fields for whatever reads the webhook.

Three reports: a scheduled reconciliation run ended (its counts per category, the top
drifts, links to the console and the CSV), a scheduled job failed (its error), and a
scheduled job runs late (no success within twice its period). The summary is stored in the
outbox as it is made, so a retry sends what the first attempt would have.
"""

from __future__ import annotations

from typing import Any

from app.store.reconciliation import RunRecord
from app.store.scheduled_jobs import ScheduledJobStatus

RECONCILIATION, JOB_FAILED, JOB_LATE = "reconciliation", "job_failed", "job_late"
TOP_DRIFTS = 10
NO_LINK = "(set HUBSYNC_PUBLIC_URL for a link to the console)"


def console_links(public_url: str | None, run_id: int | None = None) -> dict[str, str | None]:
    if public_url is None:
        return {"console_url": None, "report_csv_url": None}
    return {
        "console_url": f"{public_url}/admin/reconciliation",
        "report_csv_url": (
            f"{public_url}/v1/reconciliation/runs/{run_id}/report.csv"
            if run_id is not None
            else None
        ),
    }


def drift_line(item: dict[str, Any]) -> dict[str, Any]:
    """One drifting pair as the report shows it: who, and which fields differ how."""
    return {
        "warp_ban": item.get("warp_ban"),
        "warp_customer_id": item.get("warp_customer_id"),
        "hubspot_company_id": item.get("hubspot_company_id"),
        "action": item.get("action"),
        "fields": [
            {
                "field": entry.get("field"),
                "warp": entry.get("warp"),
                "hubspot": entry.get("hubspot"),
                "decision": entry.get("decision"),
            }
            for entry in (item.get("fields") or [])
        ],
    }


def top_drifts(items: list[dict[str, Any]], limit: int = TOP_DRIFTS) -> list[dict[str, Any]]:
    """The drifting pairs with the most differing fields first (then in run order)."""
    ranked = sorted(items, key=lambda item: -len(item.get("fields") or []))
    return [drift_line(item) for item in ranked[:limit]]


def run_summary(
    run: RunRecord, drifts: list[dict[str, Any]], public_url: str | None
) -> dict[str, Any]:
    links = console_links(public_url, run.id)
    verb = "fixed" if run.mode == "fix" else "found (dry run)"
    done = run.status == "done"
    state = "done" if done else f"FAILED: {run.error or 'no error recorded'}"
    title = f"hubsync: scheduled reconciliation run {run.id} {'done' if done else 'FAILED'}"
    lines = [
        f"*{title}*",
        f"Mode {run.mode}, {verb}; started {_iso(run.started_at)}, "
        f"ended {_iso(run.finished_at)}; {state}.",
        "Counts per category: "
        + (", ".join(f"{name} {count}" for name, count in sorted(run.counts.items())) or "none"),
        f"Queue jobs created: {run.jobs_created}; HubSpot calls: {run.hubspot_calls}.",
    ]
    if drifts:
        lines.append(f"Top drifts ({len(drifts)}):")
        for drift in drifts:
            fields = ", ".join(
                f"{f['field']}: WARP {f['warp']!r} / HubSpot {f['hubspot']!r}"
                for f in drift["fields"]
            )
            who = drift["warp_ban"] or drift["warp_customer_id"] or drift["hubspot_company_id"]
            lines.append(f"• {who}: {fields}")
    lines.append(f"Console: {links['console_url'] or NO_LINK}")
    if links["report_csv_url"]:
        lines.append(f"Report CSV: {links['report_csv_url']}")
    return {
        "kind": RECONCILIATION,
        "title": title,
        "text": "\n".join(lines),
        "run": run.to_json(),
        "counts": dict(run.counts),
        "top_drifts": drifts,
        **links,
    }


def job_summary(job: ScheduledJobStatus, kind: str, public_url: str | None) -> dict[str, Any]:
    console = f"{public_url}/admin/" if public_url is not None else None
    if kind == JOB_FAILED:
        title = f"hubsync: scheduled job {job.job} failed"
        what = (
            f"Its last run ({_iso(job.last_started_at)}, on {job.ran_by}) failed: {job.last_error}"
        )
    else:
        title = f"hubsync: scheduled job {job.job} is late"
        what = (
            f"No successful run since {_iso(job.last_success_at or job.registered_at)}, more "
            f"than twice its period ({job.period_seconds:g} s); last outcome "
            f"{job.last_outcome or 'none'}."
        )
    lines = [
        f"*{title}*",
        f"{job.name} ({job.trigger}).",
        what,
        f"Next fire: {_iso(job.next_fire_at)}.",
        f"Console: {console or NO_LINK}",
    ]
    return {
        "kind": kind,
        "title": title,
        "text": "\n".join(lines),
        "job": job.to_json(),
        "console_url": console,
    }


def _iso(moment: Any) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "never"
