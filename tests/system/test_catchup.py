"""The catch-up in a running `hubsync serve` (PostgreSQL) against a `hubsync sandbox`
process, observed only from outside: SQL on WARP's table, hubsync's HTTP API and the
sandbox's control API. With webhooks dropped, each change must arrive within one catch-up
interval (plus the time to work its job):

- a direct SQL update in WARP;
- a CRM edit masked by a later sync that wrote the company without reading it (a balance);
- a WARP update made by a transaction open for longer than the overlap, committed after a
  pass had moved the watermark past its `updated_at`.
"""

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

from tests.acceptance.deployment import Deployment, deployment, wait_until
from tests.conftest import _libpq

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.system]

INTERVAL = 3.0  # HUBSYNC_CATCHUP_INTERVAL
OVERLAP = 1.0  # HUBSYNC_CATCHUP_OVERLAP
WORK = 6.0  # a pass found it: the job is claimed and synced (a loaded 2-core machine)


def add_customers(database_url: str, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with psycopg.connect(_libpq(database_url)) as connection:
        for n, customer_id in enumerate(ids):
            connection.execute(
                "INSERT INTO accounts.customers (id, ban, company_name, customer_type, status, "
                "credit_limit, current_balance, contact, services, external_ids) "
                "VALUES (%s, %s, %s, 'POSTPAID', 'ACTIVE', 1000, 0, %s, %s, %s)",
                (
                    customer_id,
                    f"ZT-{810000000 + n}",
                    f"Catch-up Customer {n}",
                    Jsonb({"email": f"billing@catchup{n}.example"}),
                    Jsonb({"voice": {"enabled": True}}),
                    Jsonb({}),
                ),
            )
    return ids


def warp_row(database_url: str, customer_id: str) -> dict[str, Any]:
    with psycopg.connect(_libpq(database_url)) as connection:
        cursor = connection.execute(
            "SELECT status, credit_limit, current_balance FROM accounts.customers WHERE id = %s",
            (customer_id,),
        )
        status, credit_limit, balance = cursor.fetchone() or (None, None, None)
    return {"status": status, "credit_limit": credit_limit, "current_balance": balance}


def sql_update(database_url: str, customer_id: str, assignments: str) -> None:
    with psycopg.connect(_libpq(database_url)) as connection:
        connection.execute(
            f"UPDATE accounts.customers SET {assignments}, updated_at = now() WHERE id = %s",
            (customer_id,),
        )


def companies_by_ban(service: Deployment) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{service.sandbox}/_sandbox/companies", timeout=10)
    assert answer.status_code == 200, answer.text
    return {
        company["properties"]["warp_ban"]: company
        for company in answer.json()["results"]
        if company["properties"].get("warp_ban")
    }


def company_of(service: Deployment, ban: str) -> dict[str, Any]:
    return companies_by_ban(service)[ban]["properties"]  # type: ignore[no-any-return]


def arrives(check: Any, since: float, what: str) -> float:
    """Seconds from `since` until `check()` holds; fails past one interval plus the work."""
    wait_until(check, INTERVAL + OVERLAP + WORK - (time.monotonic() - since), what)
    return time.monotonic() - since


def test_lost_changes_arrive_within_one_catch_up_interval(
    postgres_url: str, tmp_path: Path
) -> None:
    edited, masked, long_held = add_customers(postgres_url, 3)
    bans = {cid: f"ZT-{810000000 + n}" for n, cid in enumerate((edited, masked, long_held))}
    settings = {"HUBSYNC_CATCHUP_INTERVAL": f"{INTERVAL:g}s", "HUBSYNC_CATCHUP_OVERLAP": "1s"}
    with deployment(postgres_url, tmp_path, workers=1, extra_env=settings) as service:
        queued = service.api("POST", "/v1/sync/customers/queue", json={"customer_ids": [*bans]})
        assert queued.status_code == 202, queued.text
        wait_until(lambda: set(bans.values()) <= set(companies_by_ban(service)), 30, "linked")
        time.sleep(INTERVAL + 1)  # the first syncs' echoes have been looked at
        service.set_faults(drop_webhooks=1.0)  # HubSpot gives up on every webhook

        # A direct SQL update in WARP.
        sql_update(postgres_url, edited, "status = 'SUSPENDED'")
        started = time.monotonic()
        took_sql = arrives(
            lambda: company_of(service, bans[edited]).get("warp_status") == "SUSPENDED",
            started,
            "the SQL update in HubSpot",
        )

        # A CRM edit, then a balance-only sync that writes the company without reading it.
        company = companies_by_ban(service)[bans[masked]]["id"]
        edit = httpx.patch(
            f"{service.sandbox}/_sandbox/companies/{company}",
            json={"properties": {"warp_credit_limit": "9000"}, "userId": 7},
            timeout=10,
        )
        assert edit.status_code == 200, edit.text
        edited_at = time.monotonic()
        sql_update(postgres_url, masked, "current_balance = 99")
        again = service.api("POST", "/v1/sync/customers/queue", json={"customer_ids": [masked]})
        assert again.status_code == 202, again.text
        wait_until(
            lambda: (
                Decimal(company_of(service, bans[masked]).get("warp_current_balance") or 0) == 99
            ),
            15,
            "the balance in HubSpot",
        )
        took_masked = arrives(
            lambda: warp_row(postgres_url, masked)["credit_limit"] == Decimal("9000"),
            edited_at,
            "the masked CRM edit in WARP",
        )

        # A transaction open longer than the overlap, across at least one pass.
        with psycopg.connect(_libpq(postgres_url)) as held:
            held.execute(
                "UPDATE accounts.customers SET status = 'SUSPENDED', updated_at = now() "
                "WHERE id = %s",
                (long_held,),
            )
            time.sleep(INTERVAL + OVERLAP + 1)
            assert company_of(service, bans[long_held]).get("warp_status") != "SUSPENDED"
            held.commit()
        committed = time.monotonic()
        took_long = arrives(
            lambda: company_of(service, bans[long_held]).get("warp_status") == "SUSPENDED",
            committed,
            "the long transaction's update in HubSpot",
        )
        board = service.api("GET", "/v1/sync/dashboard")
        assert board.status_code == 200, board.text
        passes = {row["source"]: row for row in board.json()["catch_up"]}
        assert set(passes) == {"hubspot", "warp"}
        assert passes["warp"]["position"] is not None  # commit order on PostgreSQL
        assert all(row["windows_cut_short"] == 0 for row in passes.values())
    print(
        f"arrived after: SQL {took_sql:.1f}s, masked CRM edit {took_masked:.1f}s, "
        f"long transaction {took_long:.1f}s (interval {INTERVAL:g}s)"
    )
