"""The operator's view of a real deployment on PostgreSQL: `/metrics` summed over two uvicorn
workers after a known workload, and `hubsync status` / `hubsync jobs retry` against the
running service."""

from __future__ import annotations

import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from psycopg.types.json import Jsonb

from tests.acceptance.deployment import CLIENT_SECRET, Deployment, deployment, wait_until
from tests.conftest import _libpq
from tests.metrics_support import parse_exposition, total
from tests.webhook_support import PATH, change, encode, v3_headers

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N_JOBS = 20
M_WEBHOOKS = 24


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
                    f"ZT-{800000000 + n}",
                    f"Ops Customer {n}",
                    Jsonb({"email": f"billing@ops{n}.example"}),
                    Jsonb({"voice": {"enabled": True}}),
                    Jsonb({}),
                ),
            )
    return ids


def scrape(service: Deployment) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(f"{service.base}/metrics", timeout=10)
    assert answer.status_code == 200
    return parse_exposition(answer.text)


def deliver_webhook(service: Deployment, n: int) -> int:
    body = encode([change(5_000_000 + n, value=f"Edited {n}")])
    headers = v3_headers(body, service.base + PATH, secret=CLIENT_SECRET)
    # A new connection each time, so the kernel spreads them over the worker processes.
    return httpx.post(service.base + PATH, content=body, headers=headers, timeout=10).status_code


def per_process(metrics_dir: Path, tmp_path: Path) -> list[float]:
    """Accepted webhook deliveries as each process's own file records them."""
    counts = []
    for number, path in enumerate(sorted(metrics_dir.glob("counter_*.db"))):
        alone = tmp_path / f"process-{number}"
        alone.mkdir()
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        samples = parse_exposition(generate_latest(registry).decode())
        counts.append(total(samples, "hubsync_webhook_deliveries_total", outcome="accepted"))
    return counts


def test_two_workers_serve_the_sum_of_both(postgres_url: str, tmp_path: Path) -> None:
    customers = add_customers(postgres_url, N_JOBS)
    with deployment(postgres_url, tmp_path, workers=2) as service:
        service.set_faults(error_rate=1.0, statuses=[429])
        queued = service.api("POST", "/v1/sync/customers/queue", json={"customer_ids": customers})
        assert queued.status_code == 202, queued.text
        wait_until(
            lambda: service.sandbox_stats()["responses_by_status"].get("429", 0) >= 1, 30, "a 429"
        )
        service.set_faults(error_rate=0.0)
        wait_until(
            lambda: (
                service.cli_json("status")["queue"]["pending"]["total"] == 0
                and service.cli_json("status")["queue"]["running"]["total"] == 0
            ),
            60,
            "the queue drained",
        )
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda n: deliver_webhook(service, n), range(M_WEBHOOKS)))
        assert statuses == [200] * M_WEBHOOKS
        scrapes = [scrape(service) for _ in range(6)]  # whichever process answers
        injected = service.sandbox_stats()["responses_by_status"]["429"]

    done = {total(s, "hubsync_jobs_finished_total", outcome="done") for s in scrapes}
    assert min(done) >= N_JOBS  # plus the webhooks' own jobs, finished or not
    for samples in scrapes:
        assert (
            total(samples, "hubsync_jobs_finished_total", direction="to_hubspot", outcome="done")
            == N_JOBS
        )
        assert total(samples, "hubsync_webhook_deliveries_total", outcome="accepted") == (
            M_WEBHOOKS
        )
        assert total(samples, "hubsync_hubspot_rate_limited_total") == injected
        assert total(samples, "hubsync_hubspot_requests_total", status="429") == injected
    shares = per_process(service.metrics_dir, tmp_path)
    assert sum(shares) == M_WEBHOOKS
    assert len([share for share in shares if share > 0]) == 2, shares


def test_status_and_retry_against_the_running_service(postgres_url: str, tmp_path: Path) -> None:
    healthy, broken = add_customers(postgres_url, 2)
    with deployment(postgres_url, tmp_path, workers=1) as service:
        service.set_faults(error_rate=1.0, statuses=[400])  # HubSpot refuses: fails for good
        assert service.cli_json("jobs", "retry", "--customer", broken)["queued"]

        def failed() -> bool:
            return bool(service.cli_json("status")["queue"]["failed"]["total"] == 1)

        wait_until(failed, 30, "the job failed")
        status = service.cli_json("status")
        assert status["recent_failures"][0]["entity"] == f"customer {broken}"
        assert status["open_conflicts"] == 0
        assert status["rate_limits"][0]["limit"] == 1000
        # read from the shared log in PostgreSQL (None would mean one process's memory)
        assert isinstance(status["rate_limits"][0]["in_window"], int)
        text = service.cli("status")
        assert text.returncode == 0
        assert "1 failed" in text.stdout
        assert broken in text.stdout

        service.set_faults(error_rate=0.0)
        retried = service.cli_json("jobs", "retry", "--failed", "--customer", broken)
        assert retried == {"requeued": 1, "queued": []}
        wait_until(lambda: service.cli_json("status")["queue"]["failed"]["total"] == 0, 30, "ok")
        linked = service.api("GET", f"/v1/sync/customers/{broken}").json()
        assert linked["link"]["hubspot_company_id"]

        nothing = service.cli_json("jobs", "retry", "--failed")
        assert nothing == {"requeued": 0, "queued": []}
        fresh = service.cli_json("jobs", "retry", "--customer", healthy)
        assert len(fresh["queued"]) == 1

        unknown = service.cli("jobs", "retry", "--customer", "no-such-customer")
        assert unknown.returncode == 1
        assert "no such WARP customer" in unknown.stderr
        neither = service.cli("jobs", "retry")
        assert neither.returncode == 2


def test_several_workers_are_refused_where_they_cannot_share(tmp_path: Path) -> None:
    env = {"HUBSYNC_DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "HUBSYNC_MODE": "demo"}
    service = Deployment("", "", env, tmp_path)
    refused = service.cli("serve", "--workers", "2")
    assert refused.returncode == 2
    assert "needs PostgreSQL" in refused.stderr
