"""A pause against the running whole: a `hubsync serve` process on PostgreSQL and a
`hubsync sandbox` process delivering real webhooks, seen only from outside (HTTP, SQL on
WARP's table and the queue, the sandbox's API).

Outbound paused: a CRM edit's webhook, a direct SQL change in WARP, "sync now" and a
reconciliation fix all run or queue, WARP receives the CRM's edit, and nothing at all is
written to HubSpot (the company stays exactly as the CRM user left it). Inbound paused:
"sync now" and the webhooks' jobs write HubSpot, and WARP's row stays exactly as the SQL
change left it. After each resume, everything held is applied."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.acceptance.deployment import Deployment, deployment, wait_until
from tests.conftest import _libpq

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.system]

SETTLE = 30.0  # seconds allowed for the service to do what it can


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(_libpq(url)) as connection:
        cursor = connection.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def add_customer(url: str, ban: str, name: str) -> str:
    customer_id = str(uuid.uuid4())
    sql(
        url,
        "INSERT INTO accounts.customers (id, ban, company_name, customer_type, status, "
        "credit_limit, current_balance, contact, services, external_ids) "
        "VALUES (%s, %s, %s, 'POSTPAID', 'ACTIVE', 1000, 0, %s, %s, %s)",
        customer_id,
        ban,
        name,
        Jsonb({"email": f"billing@{ban.lower()}.example"}),
        Jsonb({"voice": {"enabled": True}}),
        Jsonb({}),
    )
    return customer_id


def warp_row(url: str, customer_id: str) -> tuple[Any, ...]:
    [row] = sql(url, "SELECT * FROM accounts.customers WHERE id = %s", customer_id)
    return row


def warp_name(url: str, customer_id: str) -> str:
    [(name,)] = sql(url, "SELECT company_name FROM accounts.customers WHERE id = %s", customer_id)
    return str(name)


def company(service: Deployment, company_id: str) -> dict[str, Any]:
    """The company's properties, as the sandbox holds them."""
    answer = httpx.get(f"{service.sandbox}/_sandbox/companies", timeout=10)
    [found] = [c for c in answer.json()["results"] if c["id"] == company_id]
    return found["properties"]  # type: ignore[no-any-return]


def crm_edit(service: Deployment, company_id: str, properties: dict[str, str]) -> dict[str, Any]:
    """A person's edit in HubSpot: its webhook goes to the service."""
    answer = httpx.patch(
        f"{service.sandbox}/_sandbox/companies/{company_id}",
        json={"properties": properties, "userId": 7},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["properties"]  # type: ignore[no-any-return]


def sync_now(service: Deployment, customer_id: str) -> httpx.Response:
    def attempt() -> httpx.Response | None:
        answer = service.api("POST", f"/v1/sync/customers/{customer_id}/to-hubspot")
        return None if answer.status_code == 409 else answer  # a webhook's job holds it

    answer: httpx.Response = wait_until(attempt, SETTLE, "sync now")
    return answer


def quiet(service: Deployment, url: str) -> Callable[[], bool]:
    """Webhooks delivered and no job running: what the service could do, it did."""

    def check() -> bool:
        hooks = httpx.get(f"{service.sandbox}/_sandbox/webhooks", timeout=5).json()
        running = sql(url, "SELECT count(*) FROM hubspot_sync_queue WHERE state = 'running'")
        return hooks["pending"] == 0 and running == [(0,)]

    return check


def settle(service: Deployment, url: str) -> None:
    wait_until(quiet(service, url), SETTLE, "the service quiet")
    time.sleep(1.0)  # anything still on its way would show now
    wait_until(quiet(service, url), SETTLE, "the service quiet")


def waiting(url: str) -> set[str]:
    """The directions of the jobs left pending."""
    rows = sql(url, "SELECT direction FROM hubspot_sync_queue WHERE state = 'pending'")
    return {direction for (direction,) in rows}


def drained(url: str) -> bool:
    return sql(
        url, "SELECT count(*) FROM hubspot_sync_queue WHERE state IN ('pending', 'running')"
    ) == [(0,)]


def test_a_pause_writes_nothing_to_its_side_and_the_resume_applies_it(
    postgres_url: str, tmp_path: Path
) -> None:
    url = postgres_url
    started = time.monotonic()
    alpha = add_customer(url, "ZT-700000001", "Alpha Ltd")
    beta = add_customer(url, "ZT-700000002", "Beta Ltd")
    with deployment(url, tmp_path, workers=1, webhooks=True) as service:
        first = {c: sync_now(service, c) for c in (alpha, beta)}
        assert all(a.status_code == 200 for a in first.values()), first
        alpha_co, beta_co = (first[c].json()["hubspot_company_id"] for c in (alpha, beta))
        wait_until(lambda: drained(url), SETTLE, "the first syncs and their echoes done")

        # -- outbound paused: nothing reaches HubSpot ----------------------------------------
        paused = service.api("POST", "/v1/sync/directions/outbound/pause", json={"reason": "t"})
        assert paused.status_code == 200, paused.text
        sql(
            url,
            "UPDATE accounts.customers SET status = 'SUSPENDED', updated_at = now() WHERE id = %s",
            alpha,
        )
        as_left = crm_edit(service, alpha_co, {"name": "Alpha CRM Name"})
        queued = sync_now(service, alpha)
        assert (queued.status_code, queued.json()["status"]) == (202, "queued")
        run = service.api("POST", "/v1/reconciliation/runs", json={"mode": "fix"})
        assert run.status_code == 202, run.text
        run_id = run.json()["id"]
        wait_until(
            lambda: (
                service.api("GET", f"/v1/reconciliation/runs/{run_id}").json()["state"] == "done"
            ),
            SETTLE,
            "the reconciliation fix run",
        )
        settle(service, url)
        assert company(service, alpha_co) == as_left, "HubSpot was written while paused"
        assert company(service, alpha_co)["warp_status"] == "ACTIVE"
        # The open side runs: the CRM's edit reached WARP while outbound is paused, and what
        # goes to HubSpot waits in jobs the pause holds.
        assert warp_name(url, alpha) == "Alpha CRM Name"
        assert waiting(url) == {"to_hubspot"}

        resumed = service.api("POST", "/v1/sync/directions/outbound/resume")
        assert resumed.status_code == 200, resumed.text
        wait_until(
            lambda: company(service, alpha_co)["warp_status"] == "SUSPENDED",
            SETTLE,
            "outbound applied after the resume",
        )
        assert company(service, alpha_co)["name"] == "Alpha CRM Name"
        wait_until(lambda: drained(url), SETTLE, "the queue drained")

        # -- inbound paused: nothing reaches WARP --------------------------------------------
        paused = service.api("POST", "/v1/sync/directions/inbound/pause", json={})
        assert paused.status_code == 200, paused.text
        sql(
            url,
            "UPDATE accounts.customers SET status = 'SUSPENDED', credit_limit = 5000, "
            "updated_at = now() WHERE id = %s",
            beta,
        )
        as_set = warp_row(url, beta)
        crm_edit(service, beta_co, {"name": "Beta CRM Name"})
        now = sync_now(service, beta)
        assert now.status_code == 200, now.text
        assert company(service, beta_co)["warp_status"] == "SUSPENDED"  # outbound runs
        settle(service, url)
        assert warp_row(url, beta) == as_set, "WARP was written while inbound is paused"
        assert waiting(url) == {"to_warp"}

        resumed = service.api("POST", "/v1/sync/directions/inbound/resume")
        assert resumed.status_code == 200, resumed.text
        wait_until(
            lambda: warp_name(url, beta) == "Beta CRM Name", SETTLE, "inbound applied after resume"
        )
        wait_until(lambda: drained(url), SETTLE, "the queue drained")
        assert company(service, beta_co)["name"] == "Beta CRM Name"
        assert Decimal(company(service, beta_co)["warp_credit_limit"]) == Decimal("5000")
        assert sql(url, "SELECT count(*) FROM hubspot_sync_queue WHERE state = 'failed'") == [(0,)]
    assert time.monotonic() - started < 90
