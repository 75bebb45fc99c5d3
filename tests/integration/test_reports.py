"""Reports that come to the operator: a scheduled reconciliation run's summary arrives at a
real HTTP receiver and in a real SMTP server's mailbox (the CSV attached), through the real
scheduler; a destination that is down delays its report, never the run, and the report
arrives once it is back; a failing scheduled job is reported once per failure streak."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from app.hubspot.ratelimit import LocalRateLimiter
from app.main import create_app
from app.settings import RateLimit, Settings
from app.store import reconciliation as runs
from app.store.queue import QueueRepository
from app.store.reconciliation import RunRecord
from app.store.report_outbox import delivery_figures
from app.sync.reconcile.schedule import DAILY_JOB_ID, DailyRun
from app.sync.reconcile.service import Reconciler
from app.sync.reports.destinations import DeliveryError
from app.sync.reports.job import Reports
from app.sync.reports.runtime import REPORTS_JOB_ID, destinations_of
from app.sync.schedule.registry import JobBook, schedule_job
from app.sync.schedule.scheduler import build_scheduler
from app.warp.connector import SqlWarpConnector
from tests.conftest import Database
from tests.integration.admin_support import API_TOKEN
from tests.reconcile_support import sql_update_customer
from tests.report_receivers import (
    SMTP_PASSWORD,
    HttpReceiver,
    SmtpServer,
    self_signed_certificate,
)
from tests.support import eventually, running_service
from tests.syncenv import SyncEnv, sync_env, synced

HOOK_PATH = "/services/T0/B0/hook-secret-not-real"
PUBLIC_URL = "https://sync.example.com"


@pytest.fixture
async def scheduler() -> AsyncIterator[Any]:
    scheduler = build_scheduler()
    scheduler.start()
    yield scheduler
    scheduler.shutdown(wait=False)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


def report_settings(db: Database, receiver: HttpReceiver, smtp: SmtpServer) -> Settings:
    return Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_PUBLIC_URL": PUBLIC_URL,
            "HUBSYNC_REPORT_WEBHOOK_URL": receiver.base_url + HOOK_PATH,
            "HUBSYNC_REPORT_SMTP_URL": smtp.url,
            "HUBSYNC_REPORT_SMTP_STARTTLS": "false",
            "HUBSYNC_REPORT_EMAIL_FROM": "hubsync@example.com",
            "HUBSYNC_REPORT_EMAIL_TO": "ops@example.com, oncall@example.com",
        }
    )


async def scheduled_once(env: SyncEnv, scheduler: Any, book: JobBook) -> None:
    """The daily run, by the real scheduler, at a fire time two seconds from now (the cron
    fires once a minute, so the test sees one run)."""
    soon = datetime.now(UTC) + timedelta(seconds=2)
    trigger = CronTrigger(second=str(soon.second), timezone=UTC)
    reconciler = Reconciler(
        env.db.engine, env.warp, env.client, QueueRepository(env.db.engine), owner="replica-a"
    )
    daily = DailyRun(reconciler, trigger, "dry_run", book=book)
    await schedule_job(scheduler, DAILY_JOB_ID, "daily", trigger, daily, book=book)


async def schedule_reports(scheduler: Any, reports: Reports, book: JobBook) -> None:
    every = IntervalTrigger(seconds=0.2, timezone=UTC)
    await schedule_job(scheduler, REPORTS_JOB_ID, "reports", every, reports, book=book)


async def finished_run(db: Database) -> RunRecord | None:
    async with db.engine.connect() as connection:
        ended = await runs.finished_scheduled_runs(
            connection, since=datetime.now(UTC) - timedelta(hours=1)
        )
    return ended[0] if ended else None


async def drifting_customers(env: SyncEnv) -> tuple[str, str]:
    """One customer drifting on two fields, one missing in HubSpot, one in sync."""
    drifted, _ = await synced(env)
    await synced(env)
    await sql_update_customer(
        env, drifted, credit_limit=Decimal("5000"), company_name="=HYPERLINK(evil)"
    )
    missing = await env.add_customer()
    return drifted, missing


async def test_a_scheduled_runs_summary_arrives_by_webhook_and_by_mail(
    db: Database, scheduler: Any, receiver: HttpReceiver, smtp: SmtpServer
) -> None:
    receiver.start()
    await asyncio.to_thread(smtp.start)
    settings = report_settings(db, receiver, smtp)
    async with sync_env(db) as env:
        drifted, missing = await drifting_customers(env)
        book = JobBook(db.engine, replica="replica-a")
        reports = Reports(db.engine, destinations_of(settings), public_url=settings.public_url)
        await schedule_reports(scheduler, reports, book)
        await scheduled_once(env, scheduler, book)

        await eventually(lambda: _ready(runs_reported(receiver)), timeout=30)
        await eventually(lambda: _ready(smtp.mailbox.messages), timeout=30)
    run = await finished_run(db)
    assert run is not None
    assert run.status == "done"

    [(path, body)] = runs_reported(receiver)
    assert path == HOOK_PATH
    assert body["kind"] == "reconciliation"
    assert body["counts"] == run.counts == {"drift": 1, "missing_in_hubspot": 1, "in_sync": 1}
    assert body["run"]["id"] == run.id
    assert f"run {run.id}" in body["text"]
    assert "drift 1" in body["text"]
    assert "missing_in_hubspot 1" in body["text"]
    [top] = body["top_drifts"]
    assert top["warp_customer_id"] == drifted
    assert {f["field"] for f in top["fields"]} == {"credit_limit", "company_name"}
    assert body["console_url"] == f"{PUBLIC_URL}/admin/reconciliation"
    assert body["report_csv_url"] == f"{PUBLIC_URL}/v1/reconciliation/runs/{run.id}/report.csv"
    assert body["console_url"] in body["text"]

    [message] = smtp.mailbox.messages
    assert smtp.mailbox.logins == ["reports"]
    [(sender, recipients)] = smtp.mailbox.envelopes
    assert (sender, recipients) == (
        "hubsync@example.com",
        ["ops@example.com", "oncall@example.com"],
    )
    assert message["Subject"] == body["title"]
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert text.get_content().splitlines() == body["text"].splitlines()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == f"reconciliation-{run.id}.csv"
    table = list(csv.DictReader(io.StringIO(attachment.get_content())))
    assert {row["category"] for row in table} == {"drift", "missing_in_hubspot"}
    assert {row["warp_customer_id"] for row in table} == {drifted, missing}
    names = [row["warp_value"] for row in table if row["field"] == "company_name"]
    assert names == ["'=HYPERLINK(evil)"]  # the CSV's formula guard holds in the mail too

    await eventually(lambda: all_sent(db), timeout=10)  # (received, then marked)


async def test_a_destination_that_is_down_delays_the_report_never_the_run(
    db: Database,
    scheduler: Any,
    receiver: HttpReceiver,
    smtp: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both receivers are down (nothing listens on their ports) while the run happens."""
    caplog.set_level(logging.INFO, logger="hubsync")
    settings = report_settings(db, receiver, smtp)
    async with sync_env(db) as env:
        await drifting_customers(env)
        book = JobBook(db.engine, replica="replica-a")
        reports = Reports(
            db.engine, destinations_of(settings), public_url=PUBLIC_URL, retry_base=0.3
        )
        await schedule_reports(scheduler, reports, book)
        await scheduled_once(env, scheduler, book)

        run = await eventually(lambda: finished_run(db), timeout=30)
        assert run.status == "done"

        async def retried() -> dict[str, Any] | None:
            async with db.engine.connect() as connection:
                figures = await delivery_figures(connection)
            attempts = [row["attempts"] for row in figures["recent"]]
            return figures if len(attempts) == 2 and min(attempts) >= 2 else None

        figures = await eventually(retried, timeout=30)
        assert figures["by_state"]["pending"] == 2
        errors = {row["destination"]: row["last_error"] for row in figures["recent"]}
        assert "ConnectError" in errors["webhook"]
        assert "ConnectionRefusedError" in errors["email"]
        assert receiver.received == []
        assert smtp.mailbox.messages == []

        receiver.start()  # back, on the same ports
        await asyncio.to_thread(smtp.start)
        await eventually(lambda: _ready(runs_reported(receiver)), timeout=30)
        await eventually(lambda: _ready(smtp.mailbox.messages), timeout=30)

    [(_, body)] = runs_reported(receiver)
    assert body["run"]["id"] == run.id
    assert len(smtp.mailbox.messages) == 1
    figures = await eventually(lambda: all_sent(db), timeout=10)  # (received, then marked)
    assert all(row["attempts"] >= 2 for row in figures["recent"])  # failed, then sent
    # The failures were logged, and hubsync's lines show neither the hook's path nor the
    # SMTP password (httpx's own request lines, which name the URL, are held at WARNING and
    # redacted by the service's log filter: tests/unit/test_secret_masking.py).
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("hubsync"))
    assert "retried in" in ours
    assert "hook-secret-not-real" not in ours
    assert SMTP_PASSWORD not in ours
    assert all("hook-secret-not-real" not in (error or "") for error in errors.values())


class HubSpotDown:
    """A HubSpot that cannot be read: the scheduled run fails."""

    limiter = LocalRateLimiter(RateLimit(100, 10))

    async def list_companies_page(self, properties: Any, after: Any = None, **_: Any) -> Any:
        raise RuntimeError("HubSpot is unreachable")

    async def batch_read_companies(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("HubSpot is unreachable")

    async def search_companies(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("HubSpot is unreachable")


async def test_a_failed_scheduled_run_is_reported_with_its_error(
    db: Database, scheduler: Any, receiver: HttpReceiver, smtp: SmtpServer
) -> None:
    receiver.start()
    settings = report_settings(db, receiver, smtp)
    webhook_only = [d for d in destinations_of(settings) if d.name == "webhook"]
    book = JobBook(db.engine, replica="replica-a")
    await schedule_reports(scheduler, Reports(db.engine, webhook_only, public_url=PUBLIC_URL), book)
    soon = datetime.now(UTC) + timedelta(seconds=2)
    trigger = CronTrigger(second=str(soon.second), timezone=UTC)
    warp = SqlWarpConnector(db.engine, db.customers_table)
    reconciler = Reconciler(db.engine, warp, HubSpotDown(), QueueRepository(db.engine))
    daily = DailyRun(reconciler, trigger, "fix", book=book)
    await schedule_job(scheduler, DAILY_JOB_ID, "daily", trigger, daily, book=book)

    [(_, body)] = await eventually(lambda: _listed(runs_reported(receiver)), timeout=30)
    assert body["run"]["state"] == "failed"
    assert body["title"].endswith("FAILED")
    assert "HubSpot is unreachable" in body["text"]
    assert body["run"]["error"] is not None


async def test_a_failing_scheduled_job_is_reported_once_per_failure_streak(
    db: Database, scheduler: Any, receiver: HttpReceiver, smtp: SmtpServer
) -> None:
    receiver.start()
    settings = report_settings(db, receiver, smtp)
    webhook_only = [d for d in destinations_of(settings) if d.name == "webhook"]
    book = JobBook(db.engine, replica="replica-a")
    failures = 0

    async def broken() -> None:
        nonlocal failures
        failures += 1
        raise RuntimeError("the disk is full")

    await schedule_job(
        scheduler, "broken", "fails", IntervalTrigger(seconds=0.1, timezone=UTC), broken, book=book
    )
    await schedule_reports(scheduler, Reports(db.engine, webhook_only, public_url=None), book)
    await eventually(lambda: _ready(receiver.received), timeout=15)

    async def failed_often() -> bool:
        return failures >= 10

    await eventually(failed_often, timeout=15)
    await asyncio.sleep(0.5)  # several more report passes over the same failure streak

    failed = [body for _, body in receiver.received if body["kind"] == "job_failed"]
    assert len(failed) == 1
    [body] = failed
    assert body["job"]["job"] == "broken"
    assert "RuntimeError: the disk is full" in body["text"]
    assert "HUBSYNC_PUBLIC_URL" in body["text"]  # no link without it, and it says so


async def test_a_refusing_destination_is_retried_then_given_up_and_shown(
    db: Database, scheduler: Any, receiver: HttpReceiver, smtp: SmtpServer
) -> None:
    """A webhook answering 503 (with the hook's path in its body) is tried `max_attempts`
    times with backoff, then left `failed` with its error on the dashboard's figures."""
    receiver.refuse_with = 503
    receiver.start()
    settings = report_settings(db, receiver, smtp)
    webhook_only = [d for d in destinations_of(settings) if d.name == "webhook"]
    book = JobBook(db.engine, replica="replica-a")

    async def broken() -> None:
        raise RuntimeError("the disk is full")

    every = IntervalTrigger(seconds=0.1, timezone=UTC)
    await schedule_job(scheduler, "broken", "fails", every, broken, book=book)
    reports = Reports(db.engine, webhook_only, retry_base=0.1, max_attempts=3)
    await schedule_reports(scheduler, reports, book)

    async def given_up() -> dict[str, Any] | None:
        async with db.engine.connect() as connection:
            figures = await delivery_figures(connection)
        return figures if figures["by_state"]["failed"] else None

    async def both_given_up() -> dict[str, Any] | None:
        figures = await given_up()
        return figures if figures and figures["by_state"]["failed"] == 2 else None

    # The job failed (one report) and, failing for longer than twice its period, is late
    # (another).
    figures = await eventually(both_given_up, timeout=20)
    assert {r["kind"] for r in figures["recent"]} == {"job_failed", "job_late"}
    for row in figures["recent"]:
        assert (row["state"], row["attempts"]) == ("failed", 3)
        assert row["next_attempt_at"] is None
        assert row["last_error"] == "webhook: HTTP 503: no hook at ***"  # its path scrubbed
    await asyncio.sleep(0.5)
    assert receiver.refused == 6  # never tried again once given up


async def test_mail_goes_over_starttls_to_a_server_it_trusts_only(
    tmp_path: Path, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """smtp:// upgrades with STARTTLS and checks the server's certificate before logging in:
    an untrusted certificate is a delivery error; trusted (here through SSL_CERT_FILE, as a
    private CA would be), the mail and its CSV arrive."""
    cert, key = self_signed_certificate(tmp_path)
    smtp.certificate = (cert, key)
    await asyncio.to_thread(smtp.start)
    settings = Settings.from_mapping(
        {
            "HUBSYNC_REPORT_SMTP_URL": smtp.url,
            "HUBSYNC_REPORT_EMAIL_FROM": "hubsync@example.com",
            "HUBSYNC_REPORT_EMAIL_TO": "ops@example.com",
        }
    )
    [email] = destinations_of(settings)
    summary = {"title": "hubsync: a test", "text": "Counts per category: drift 1"}
    with pytest.raises(DeliveryError, match="SSLCertVerificationError") as refused:
        await email.send(summary, b"run_id,category\r\n", 7)
    assert SMTP_PASSWORD not in str(refused.value)
    assert smtp.mailbox.messages == []

    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    await email.send(summary, b"run_id,category\r\n7,drift\r\n", 7)
    [message] = smtp.mailbox.messages
    assert smtp.mailbox.logins == ["reports"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "reconciliation-7.csv"
    assert attachment.get_content().splitlines() == ["run_id,category", "7,drift"]


async def test_the_service_schedules_the_reports_and_its_dashboard_shows_them(
    db: Database, receiver: HttpReceiver, smtp: SmtpServer
) -> None:
    """`serve`'s own wiring: with destinations set, the `reports` job runs on the scheduler
    and GET /v1/sync/dashboard lists the outbox; without them there is no such job."""
    receiver.start()
    base = report_settings(db, receiver, smtp)
    settings = Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_DEMO_DATA": "false",
            "HUBSYNC_QUEUE_TICK_INTERVAL": "1",
            "HUBSYNC_API_TOKENS": API_TOKEN,
            "HUBSYNC_REPORT_WEBHOOK_URL": receiver.base_url + HOOK_PATH,
        }
    )
    assert base.report_smtp is not None
    async with running_service(create_app(settings)) as (client, context):
        assert context.scheduler.get_job(REPORTS_JOB_ID) is not None

        async def dashboard() -> dict[str, Any] | None:
            answer = await client.get(
                "/v1/sync/dashboard", headers={"Authorization": f"Bearer {API_TOKEN}"}
            )
            assert answer.status_code == 200
            jobs = {job["job"]: job for job in answer.json()["scheduled_jobs"]}
            ran = jobs.get(REPORTS_JOB_ID, {}).get("last_outcome") == "ok"
            return answer.json() if ran else None

        figures = await eventually(dashboard, timeout=15)
        outbox = figures["report_deliveries"]
        assert set(outbox) == {"by_state", "recent"}
        assert set(outbox["by_state"]) == {"pending", "sent", "failed"}
        # Nothing failed and no run ended, so nothing is due but this: on a loaded machine the
        # one-second queue job can miss two periods, and then the service rightly reports it
        # late (once, and it reaches the hook). Anything else listed is a fault.
        assert outbox["by_state"]["failed"] == 0
        assert {row["kind"] for row in outbox["recent"]} <= {"job_late"}
        assert sum(outbox["by_state"].values()) == len(outbox["recent"])
        assert outbox["by_state"]["sent"] <= len(receiver.received)
        assert "hook-secret-not-real" not in str(context.settings.describe())
    off = Settings.from_mapping({**db.env, "HUBSYNC_WORKER": "false", "HUBSYNC_DEMO_DATA": "0"})
    async with running_service(create_app(off)) as (_, context):
        assert context.scheduler.get_job(REPORTS_JOB_ID) is None


async def all_sent(db: Database) -> dict[str, Any] | None:
    async with db.engine.connect() as connection:
        figures = await delivery_figures(connection)
    return figures if figures["by_state"] == {"pending": 0, "sent": 2, "failed": 0} else None


def runs_reported(receiver: HttpReceiver) -> list[tuple[str, dict[str, Any]]]:
    return [(path, body) for path, body in receiver.received if body["kind"] == "reconciliation"]


async def _listed(found: list[Any]) -> list[Any]:
    return found


async def _ready(found: list[Any]) -> bool:
    return bool(found)
