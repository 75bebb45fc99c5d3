"""Reports that come to the operator, from the running service: `hubsync serve --workers 2`
(two schedulers) on PostgreSQL beside a `hubsync sandbox`, with a scheduled dry run every
minute, reporting to a local HTTP receiver and a local SMTP server; observed only from
outside (what arrives, the API's runs and dashboard).

- the webhook receiver is down when the run ends: the run finishes anyway, the dashboard
  shows the delivery pending with its error, and the report arrives once the receiver is
  back; the e-mail arrives with the run's CSV attached;
- each run is reported once to each destination, though both processes offer it.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from tests.acceptance.deployment import deployment, wait_until
from tests.report_receivers import HttpReceiver, SmtpServer
from tests.system.test_pause import sql

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.system]

HOOK_PATH = "/services/T0/B0/hook-secret-not-real"


def add_customer(url: str) -> str:
    customer_id = str(uuid.uuid4())
    sql(
        url,
        "INSERT INTO accounts.customers (id, ban, company_name, customer_type, status, "
        "credit_limit, current_balance, contact, services, external_ids) "
        "VALUES (%s, 'ZT-REPORT-1', 'Reported Ltd', 'POSTPAID', 'ACTIVE', 1000, 0, %s, %s, %s)",
        customer_id,
        Jsonb({"email": "billing@reported.example"}),
        Jsonb({"voice": {"enabled": True}}),
        Jsonb({}),
    )
    return customer_id


def test_a_scheduled_runs_report_arrives_once_the_receiver_is_back(
    postgres_url: str, tmp_path: Path
) -> None:
    customer = add_customer(postgres_url)
    receiver, smtp = HttpReceiver(), SmtpServer()
    smtp.start()
    env = {
        "HUBSYNC_RECONCILE_CRON": "* * * * *",
        "HUBSYNC_RECONCILE_MODE": "dry_run",
        "HUBSYNC_QUEUE_TICK_INTERVAL": "1s",
        "HUBSYNC_PUBLIC_URL": "https://sync.example.com",
        "HUBSYNC_REPORT_WEBHOOK_URL": receiver.base_url + HOOK_PATH,
        "HUBSYNC_REPORT_SMTP_URL": smtp.url,
        "HUBSYNC_REPORT_SMTP_STARTTLS": "false",
        "HUBSYNC_REPORT_EMAIL_FROM": "hubsync@example.com",
        "HUBSYNC_REPORT_EMAIL_TO": "ops@example.com",
        "HUBSYNC_LOG_LEVEL": "INFO",
    }
    try:
        with deployment(postgres_url, tmp_path, workers=2, extra_env=env) as service:

            def a_run_ended() -> dict[str, Any] | None:
                listed = service.api("GET", "/v1/reconciliation/runs").json()["runs"]
                ended = [r for r in listed if r["trigger"] == "schedule" and r["finished_at"]]
                return ended[-1] if ended else None

            # The daily run fires at the next whole minute; the receiver is down meanwhile.
            run = wait_until(a_run_ended, 90, "a scheduled run ended")
            assert run["state"] == "done"

            def webhook_failed() -> dict[str, Any] | None:
                dashboard = service.api("GET", "/v1/sync/dashboard").json()
                rows = dashboard["report_deliveries"]["recent"]
                hooks = [r for r in rows if r["destination"] == "webhook" and r["last_error"]]
                return hooks[0] if hooks else None

            failed = wait_until(webhook_failed, 30, "the webhook delivery failed and waits")
            assert failed["state"] == "pending"
            assert "ConnectError" in failed["last_error"]
            assert "hook-secret-not-real" not in failed["last_error"]

            # The e-mail went meanwhile, with the CSV attached.
            wait_until(lambda: smtp.mailbox.messages, 30, "the report e-mail arrived")
            [message] = smtp.mailbox.messages
            [attachment] = list(message.iter_attachments())
            assert attachment.get_filename() == f"reconciliation-{run['id']}.csv"
            rows = list(csv.DictReader(io.StringIO(attachment.get_content())))
            assert [(r["category"], r["warp_customer_id"]) for r in rows] == [
                ("missing_in_hubspot", customer)
            ]

            receiver.start()  # back: the retry (30 s after the first failure) delivers it

            def reported() -> list[dict[str, Any]]:
                return [b for _, b in receiver.received if b["kind"] == "reconciliation"]

            [body, *_] = wait_until(reported, 60, "the webhook report arrived")
            assert body["run"]["id"] == run["id"]
            assert body["counts"] == {"missing_in_hubspot": 1}
            assert "missing_in_hubspot 1" in body["text"]
            dashboard = service.api("GET", "/v1/sync/dashboard").json()
            assert dashboard["report_deliveries"]["by_state"]["failed"] == 0
        log = (tmp_path / "serve.log").read_text()
    finally:
        receiver.stop()
        smtp.stop()
    # Both processes offered each run; each destination got each run once.
    per_run = Counter(b["run"]["id"] for _, b in receiver.received if b["kind"] == "reconciliation")
    assert set(per_run.values()) == {1}, per_run
    mails = Counter(str(m["Subject"]) for m in smtp.mailbox.messages)
    assert set(mails.values()) == {1}, mails
    assert "retried in" in log
    assert "hook-secret-not-real" not in log
    assert "p@ss-not-real" not in log
