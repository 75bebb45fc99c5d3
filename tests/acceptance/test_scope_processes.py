"""Issue 23 item 2 against a real `hubsync serve` and `hubsync sandbox` on PostgreSQL, observed
from outside (the API, the CLI, the sandbox's API, SQL): a scope set with `hubsync scope set`
keeps a CLOSED customer out of HubSpot, leaves a customer that closes alone in both directions
(its company untouched), syncs it again when it reopens, and reconciliation counts it."""

from __future__ import annotations

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
from tests.acceptance.test_identity_processes import companies, run_to_end
from tests.conftest import _libpq
from tests.webhook_support import PATH, change, encode, v3_headers

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def add_customer(database_url: str, ban: str, status: str) -> str:
    customer_id = str(uuid.uuid4())
    with psycopg.connect(_libpq(database_url)) as connection:
        connection.execute(
            "INSERT INTO accounts.customers (id, ban, company_name, customer_type, status, "
            "credit_limit, current_balance, contact, services, external_ids) "
            "VALUES (%s, %s, %s, 'POSTPAID', %s, 1000, 0, %s, %s, %s)",
            (
                customer_id,
                ban,
                f"Scope {ban}",
                status,
                Jsonb({"email": "billing@scope.example"}),
                Jsonb({"voice": {"enabled": True}}),
                Jsonb({}),
            ),
        )
    return customer_id


def sql(database_url: str, statement: str, *params: Any) -> list[Any]:
    with psycopg.connect(_libpq(database_url)) as connection:
        cursor = connection.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def company(service: Deployment, company_id: str) -> dict[str, Any]:
    [found] = [c for c in companies(service) if c["id"] == company_id]
    return dict(found["properties"])


def test_the_scope_on_a_running_service(postgres_url: str, tmp_path: Path) -> None:
    closed = add_customer(postgres_url, "ZT-830000001", "CLOSED")
    closing = add_customer(postgres_url, "ZT-830000002", "ACTIVE")
    with deployment(postgres_url, tmp_path, workers=1) as service:
        scoped = service.cli("scope", "set", "--not-in", "status=CLOSED")
        assert scoped.returncode == 0, scoped.stderr
        assert service.api("GET", "/v1/sync/scope").json()["conditions"] == [
            {"column": "status", "op": "not_in", "values": ["CLOSED"]}
        ]

        # A CLOSED customer is never created in HubSpot.
        answer = service.api("POST", f"/v1/sync/customers/{closed}/to-hubspot")
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "out_of_scope"
        synced = service.api("POST", f"/v1/sync/customers/{closing}/to-hubspot")
        assert synced.json()["outcome"] == "created", synced.text
        company_id = synced.json()["hubspot_company_id"]
        assert {c["properties"]["warp_ban"] for c in companies(service)} == {"ZT-830000002"}

        # It closes: neither a WARP edit nor a CRM edit (signed webhook) is synced.
        sql(
            postgres_url,
            "UPDATE accounts.customers SET status = 'CLOSED', current_balance = 77, "
            "updated_at = now() WHERE id = %s",
            closing,
        )
        left = service.api("POST", f"/v1/sync/customers/{closing}/to-hubspot")
        assert left.json()["outcome"] == "out_of_scope", left.text
        edited = httpx.patch(
            f"{service.sandbox}/_sandbox/companies/{company_id}",
            json={"properties": {"warp_credit_limit": "4200"}, "userId": 7},
            timeout=10,
        )
        assert edited.status_code == 200, edited.text
        before = company(service, company_id)
        body = encode(
            [
                change(
                    int(company_id),
                    "4200",
                    int(time.time() * 1000),
                    eventId=931,
                    propertyName="warp_credit_limit",
                )
            ]
        )
        delivered = httpx.post(
            service.base + PATH,
            content=body,
            headers=v3_headers(body, service.base + PATH, secret=CLIENT_SECRET),
            timeout=10,
        )
        assert delivered.json()["queued"] == 1, delivered.text

        def webhook_job_done() -> bool:
            [(state, *_)] = sql(
                postgres_url,
                "SELECT state, payload FROM hubspot_sync_queue WHERE source = 'webhook' "
                "AND entity_key = %s ORDER BY id DESC LIMIT 1",
                closing,
            ) or [(None,)]
            return bool(state == "done")

        wait_until(webhook_job_done, 30, "the webhook's job done")
        [(reason,)] = sql(
            postgres_url,
            "SELECT error FROM hubspot_sync_log WHERE source = 'webhook' "
            "AND warp_customer_id = %s ORDER BY id DESC LIMIT 1",
            closing,
        )
        assert reason.startswith("out of the sync scope: status is 'CLOSED'")
        [(limit, status)] = sql(
            postgres_url,
            "SELECT credit_limit, status FROM accounts.customers WHERE id = %s",
            closing,
        )
        assert status == "CLOSED"
        assert Decimal(limit) == Decimal("1000")  # the CRM edit did not reach WARP
        after = company(service, company_id)
        assert after == before  # nothing written to the company
        assert after["warp_status"] == "ACTIVE"
        assert after["warp_current_balance"] == "0"

        counts = run_to_end(service, "dry_run")["counts"]
        assert counts["out_of_scope"] == 2, counts

        # It reopens: both sides' edits are merged from the base.
        sql(
            postgres_url,
            "UPDATE accounts.customers SET status = 'ACTIVE', updated_at = now() WHERE id = %s",
            closing,
        )
        back = service.api("POST", f"/v1/sync/customers/{closing}/to-hubspot")
        assert back.status_code == 200, back.text
        assert back.json()["outcome"] == "updated", back.text
        assert company(service, company_id)["warp_current_balance"] == "77"
        [(limit,)] = sql(
            postgres_url, "SELECT credit_limit FROM accounts.customers WHERE id = %s", closing
        )
        assert Decimal(limit) == Decimal("4200")
        assert {c["properties"]["warp_ban"] for c in companies(service)} == {"ZT-830000002"}
