"""Operators racing each other against a real deployment on PostgreSQL (`hubsync serve` with
two processes and `hubsync sandbox`): two resolutions of one conflict sent at the same moment
(one wins, the other is told 409 `not_open`, and the record is what both systems hold), a
re-run of more failed jobs than one requeue chunk, and jobs finished outside the worker
counted in `/metrics`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier
from typing import Any

import httpx
import psycopg
import pytest

from tests.acceptance.deployment import Deployment, deployment
from tests.acceptance.test_operations import add_customers, scrape
from tests.conftest import _libpq
from tests.metrics_support import total

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def sql(database_url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(_libpq(database_url)) as connection:
        cursor = connection.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def open_conflict(service: Deployment, database_url: str) -> tuple[int, str, str]:
    """A customer whose name was changed on both sides while its rule is MANUAL."""
    [customer_id] = add_customers(database_url, 1)
    synced = service.api("POST", f"/v1/sync/customers/{customer_id}/to-hubspot")
    assert synced.status_code == 200, synced.text
    company_id = synced.json()["hubspot_company_id"]
    rules = service.api("GET", "/v1/sync/config").json()["rules"]
    for rule in rules:
        if rule["warp_field"] == "company_name":
            rule["authority"] = "MANUAL"
    assert service.api("PUT", "/v1/sync/config", json={"rules": rules}).status_code == 200
    edited = httpx.patch(
        f"{service.sandbox}/_sandbox/companies/{company_id}",
        json={"properties": {"name": "Sales Name"}},
        timeout=5,
    )
    assert edited.status_code == 200, edited.text
    sql(
        database_url,
        "UPDATE accounts.customers SET company_name = 'Billing Name', updated_at = now() "
        "WHERE id = %s",
        customer_id,
    )
    again = service.api("POST", f"/v1/sync/customers/{customer_id}/to-hubspot")
    assert again.status_code in (200, 202, 422), again.text
    [(conflict_id,)] = sql(
        database_url,
        "SELECT id FROM hubspot_conflicts WHERE warp_customer_id = %s AND state = 'open'",
        customer_id,
    )
    return conflict_id, customer_id, company_id


def test_two_concurrent_resolutions_one_wins(postgres_url: str, tmp_path: Path) -> None:
    with deployment(postgres_url, tmp_path, workers=2) as service:
        conflict_id, customer_id, company_id = open_conflict(service, postgres_url)
        start = Barrier(2)

        def resolve(value: str) -> httpx.Response:
            start.wait()
            # A connection each, so the kernel may hand them to different processes.
            return service.api(
                "POST",
                f"/v1/sync/conflicts/{conflict_id}/resolve",
                json={"choice": "VALUE", "value": value},
            )

        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(resolve, ["Alice Ltd", "Bob Ltd"]))
        company = httpx.get(
            f"{service.sandbox}/crm/v3/objects/companies/{company_id}?properties=name",
            headers={"Authorization": "Bearer sandbox-access-token-for-tests"},
            timeout=5,
        ).json()

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 409], [answer.text for answer in answers]
    [won] = [answer.json() for answer in answers if answer.status_code == 200]
    [lost] = [answer.json() for answer in answers if answer.status_code == 409]
    assert lost["error"] == "not_open"
    [(state, resolution, resolved_value)] = sql(
        postgres_url,
        "SELECT state, resolution, resolved_value FROM hubspot_conflicts WHERE id = %s",
        conflict_id,
    )
    assert (state, resolution, resolved_value) == ("resolved", "VALUE", won["value"])
    [(in_warp,)] = sql(
        postgres_url, "SELECT company_name FROM accounts.customers WHERE id = %s", customer_id
    )
    assert in_warp == won["value"]
    assert company["properties"]["name"] == won["value"]


MANY = 1200  # more than one requeue chunk (500), twice over


def add_failed_jobs(database_url: str, count: int, kind: str) -> list[int]:
    """Failed jobs for `count` distinct customers (one each, so none merges into another)."""
    with psycopg.connect(_libpq(database_url)) as connection:
        rows = connection.execute(
            "INSERT INTO hubspot_sync_queue (entity_type, entity_key, direction, source, state, "
            "attempts, last_error, last_error_kind, finished_at) "
            "SELECT 'customer', gen_random_uuid()::text, 'to_hubspot', 'api', 'failed', 3, "
            "'HubSpot said no', %s, now() FROM generate_series(1, %s) RETURNING id",
            (kind, count),
        ).fetchall()
    return [row[0] for row in rows]


def states(database_url: str, ids: list[int]) -> dict[str, int]:
    found = sql(
        database_url,
        "SELECT state, count(*) FROM hubspot_sync_queue WHERE id = ANY(%s) GROUP BY state",
        ids,
    )
    return dict(found)  # type: ignore[arg-type]


def test_retry_requeues_every_matching_job(postgres_url: str, tmp_path: Path) -> None:
    by_filter = add_failed_jobs(postgres_url, MANY, "validation")
    by_ids = add_failed_jobs(postgres_url, MANY, "transport")
    untouched = add_failed_jobs(postgres_url, 3, "other")
    with deployment(postgres_url, tmp_path, workers=2) as service:
        # Paused, the worker leaves the requeued jobs pending where they can be counted.
        paused = service.api("POST", "/v1/sync/directions/outbound/pause", json={})
        assert paused.status_code == 200, paused.text
        matched = service.api(
            "POST", "/v1/sync/failed/retry", json={"filter": {"kind": "validation"}}
        )
        listed = service.api("POST", "/v1/sync/failed/retry", json={"job_ids": by_ids})
    assert matched.status_code == 200, matched.text
    assert matched.json() == {"requeued": MANY}
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"requeued": MANY}
    assert states(postgres_url, by_filter) == {"pending": MANY}
    assert states(postgres_url, by_ids) == {"pending": MANY}
    assert states(postgres_url, untouched) == {"failed": 3}


def test_sync_now_jobs_are_counted_in_the_metrics(postgres_url: str, tmp_path: Path) -> None:
    """Jobs run by `POST …/to-hubspot` (in the request, not by the worker) are counted in
    `/metrics` summed over both processes, like the worker's."""
    customers = add_customers(postgres_url, 4)
    with deployment(postgres_url, tmp_path, workers=2) as service:
        before = scrape(service)
        for customer_id in customers:
            answer = service.api("POST", f"/v1/sync/customers/{customer_id}/to-hubspot")
            assert answer.status_code == 200, answer.text
        after = scrape(service)

    def added(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert added("hubsync_jobs_finished_total", direction="to_hubspot", outcome="done") == 4
    assert added("hubsync_queue_to_hubspot_seconds_count") == 4
