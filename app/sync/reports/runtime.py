"""Add the reports' job to the scheduler when a destination is configured.

`start_reports(context)` builds the destinations from the settings and schedules `Reports`
(app/sync/reports/job.py) every `REPORT_INTERVAL_SECONDS`, or every queue tick when that is
shorter (a test or a small deployment that ticks every second reports within a second).
"""

from __future__ import annotations

from datetime import UTC

from apscheduler.triggers.interval import IntervalTrigger

from app.context import AppContext
from app.settings import Settings
from app.sync.reports.destinations import Destination, EmailDestination, WebhookDestination
from app.sync.reports.job import REPORTS_JOB_ID, Reports
from app.sync.schedule.registry import schedule_job

REPORT_INTERVAL_SECONDS = 15.0


def destinations_of(settings: Settings) -> list[Destination]:
    found: list[Destination] = []
    if settings.report_webhook_url is not None:
        found.append(WebhookDestination(settings.report_webhook_url))
    if settings.report_smtp is not None and settings.report_email_from is not None:
        found.append(
            EmailDestination(
                settings.report_smtp, settings.report_email_from, settings.report_email_to
            )
        )
    return found


async def start_reports(context: AppContext) -> Reports | None:
    settings = context.settings
    scheduler = context.scheduler
    if scheduler is None:
        return None
    destinations = destinations_of(settings)
    if not destinations:
        if context.job_book is not None:
            await context.job_book.forget(REPORTS_JOB_ID)
        return None
    reports = Reports(context.engine, destinations, public_url=settings.public_url)
    interval = min(REPORT_INTERVAL_SECONDS, settings.queue_tick_seconds)
    await schedule_job(
        scheduler,
        REPORTS_JOB_ID,
        f"send reports to {settings.describe_reports()}",
        IntervalTrigger(seconds=interval, timezone=UTC),
        reports,
        book=context.job_book,
    )
    return reports
