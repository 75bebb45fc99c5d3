"""Issue 20 items 1, 2, 3 and 8 against a real `hubsync serve` and `hubsync sandbox` on
PostgreSQL, observed from outside (the API, the sandbox's API, SQL):

- a fix run adopts a company whose `warp_ban` has a trailing space (no second company, the
  ban corrected), syncs a customer with a 100-character ban, and its CSV report hands a
  spreadsheet no formula;
- a signed webhook dated years ahead is stored failed and never applied, and real edits
  made later on both sides win.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.acceptance.deployment import CLIENT_SECRET, Deployment, deployment, wait_until
from tests.conftest import _libpq
from tests.webhook_support import PATH, change, encode, v3_headers

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FORMULA = '=HYPERLINK("https://evil.example","click")'


def add_customer(database_url: str, ban: str, name: str) -> str:
    customer_id = str(uuid.uuid4())
    with psycopg.connect(_libpq(database_url)) as connection:
        connection.execute(
            "INSERT INTO accounts.customers (id, ban, company_name, customer_type, status, "
            "credit_limit, current_balance, contact, services, external_ids) "
            "VALUES (%s, %s, %s, 'POSTPAID', 'ACTIVE', 1000, 0, %s, %s, %s)",
            (
                customer_id,
                ban,
                name,
                Jsonb({"email": "billing@identity.example"}),
                Jsonb({"voice": {"enabled": True}}),
                Jsonb({}),
            ),
        )
    return customer_id


def credit_limit(database_url: str, customer_id: str) -> Decimal:
    with psycopg.connect(_libpq(database_url)) as connection:
        row = connection.execute(
            "SELECT credit_limit FROM accounts.customers WHERE id = %s", (customer_id,)
        ).fetchone()
    assert row is not None
    return Decimal(row[0])


def companies(service: Deployment) -> list[dict[str, Any]]:
    answer = httpx.get(f"{service.sandbox}/_sandbox/companies", timeout=10)
    results: list[dict[str, Any]] = answer.json()["results"]
    return results


def run_to_end(service: Deployment, mode: str) -> dict[str, Any]:
    started = service.api("POST", "/v1/reconciliation/runs", json={"mode": mode})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    def done() -> dict[str, Any] | None:
        run: dict[str, Any] = service.api("GET", f"/v1/reconciliation/runs/{run_id}").json()
        return run if run["state"] != "running" else None

    result: dict[str, Any] = wait_until(done, 60, f"run {run_id} finished")
    return result


def queue_drained(service: Deployment) -> bool:
    status = service.cli_json("status")["queue"]
    return bool(status["pending"]["total"] == 0 and status["running"]["total"] == 0)


def test_a_fix_run_adopts_a_spaced_ban_syncs_a_long_one_and_reports_safely(
    postgres_url: str, tmp_path: Path
) -> None:
    spaced = add_customer(postgres_url, "ZT-810000001", "Spaced Ltd")
    long_ban = "ZT-" + "8" * 97
    lengthy = add_customer(postgres_url, long_ban, "Lengthy Ltd")
    with deployment(postgres_url, tmp_path, workers=1) as service:
        seeded = httpx.post(
            f"{service.sandbox}/_sandbox/companies",
            json={"companies": [{"properties": {"name": FORMULA, "warp_ban": "ZT-810000001 "}}]},
            timeout=10,
        )
        assert seeded.status_code == 201, seeded.text
        [company_id] = seeded.json()["ids"]

        run = run_to_end(service, "fix")
        assert run["state"] == "done", run
        assert run["counts"] == {"adopt": 1, "missing_in_hubspot": 1}
        report = service.api("GET", f"/v1/reconciliation/runs/{run['id']}/report.csv")
        rows = list(csv.DictReader(io.StringIO(report.text, newline="")))
        adopt = [r for r in rows if r["category"] == "adopt"]
        assert {r["warp_ban"] for r in adopt} == {"ZT-810000001"}
        assert "'" + FORMULA in {r["hubspot_value"] for r in adopt}
        assert not any(cell.startswith("=") for row in rows for cell in row.values())
        assert {r["warp_ban"] for r in rows if r["category"] == "missing_in_hubspot"} == {long_ban}

        wait_until(lambda: queue_drained(service), 60, "the fix's jobs done")
        held = {c["id"]: c["properties"]["warp_ban"] for c in companies(service)}
        assert len(held) == 2, held  # the adopted one and the long ban's new one
        assert held[company_id] == "ZT-810000001"
        assert long_ban in held.values()
        for customer, company in ((spaced, company_id), (lengthy, None)):
            link = service.api("GET", f"/v1/sync/customers/{customer}").json()["link"]
            assert link["state"] == "active"
            assert company is None or link["hubspot_company_id"] == company
        assert run_to_end(service, "dry_run")["counts"] == {"in_sync": 2}


def deliver(service: Deployment, events: list[dict[str, Any]]) -> httpx.Response:
    body = encode(events)
    headers = v3_headers(body, service.base + PATH, secret=CLIENT_SECRET)
    return httpx.post(service.base + PATH, content=body, headers=headers, timeout=10)


def test_a_webhook_dated_years_ahead_is_failed_and_later_edits_win(
    postgres_url: str, tmp_path: Path
) -> None:
    customer = add_customer(postgres_url, "ZT-820000001", "Clocked Ltd")
    with deployment(postgres_url, tmp_path, workers=1) as service:
        synced = service.api("POST", f"/v1/sync/customers/{customer}/to-hubspot")
        assert synced.status_code == 200, synced.text
        company_id = synced.json()["hubspot_company_id"]
        years_ahead = int(time.time() * 1000) + 3 * 365 * 24 * 3600 * 1000
        answer = deliver(
            service,
            [
                change(
                    int(company_id),
                    "999999",
                    years_ahead,
                    eventId=901,
                    propertyName="warp_credit_limit",
                )
            ],
        )
        assert answer.status_code == 200, answer.text
        assert (answer.json()["failed"], answer.json()["queued"]) == (1, 0)
        failed = service.api("GET", "/v1/webhooks/events", params={"status": "failed"}).json()
        [event] = [e for e in failed["events"] if e["event_id"] == 901]
        assert "clock skew" in event["status_reason"]

        # A real WARP edit later reaches HubSpot; the future value reached neither side.
        with psycopg.connect(_libpq(postgres_url)) as connection:
            connection.execute(
                "UPDATE accounts.customers SET credit_limit = 3000, updated_at = now() "
                "WHERE id = %s",
                (customer,),
            )
        assert service.api("POST", f"/v1/sync/customers/{customer}/to-hubspot").status_code == 200

        def company_limit() -> str:
            [company] = [c for c in companies(service) if c["id"] == company_id]
            return str(company["properties"]["warp_credit_limit"])

        assert company_limit() == "3000"
        # A real CRM edit later, delivered signed, reaches WARP.
        edited = httpx.patch(
            f"{service.sandbox}/_sandbox/companies/{company_id}",
            json={"properties": {"warp_credit_limit": "5000"}, "userId": 7},
            timeout=10,
        )
        assert edited.status_code == 200, edited.text
        now = int(time.time() * 1000)
        answer = deliver(
            service,
            [change(int(company_id), "5000", now, eventId=902, propertyName="warp_credit_limit")],
        )
        assert answer.json()["queued"] == 1, answer.text
        wait_until(
            lambda: credit_limit(postgres_url, customer) == Decimal("5000"), 30, "WARP has 5000"
        )
        assert company_limit() == "5000"
