"""The scheduler's promises, kept by the running service: two `hubsync serve` replicas (one
`serve --workers 2`, each process with its own scheduler) on PostgreSQL beside a `hubsync
sandbox` process, with short intervals, observed only from outside: the dashboard's JSON,
`hubsync status --json`, `/metrics`, the service's log and SQL.

- every scheduled job runs (its last success recorded, by a replica, not late);
- a scheduled reconciliation (`* * * * *`) happens once per fire time across both replicas;
- done jobs, webhook events, sync log entries and reconciliation reports older than their
  retention are pruned by the running service, newer ones kept.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.acceptance.deployment import Deployment, deployment, wait_until
from tests.conftest import _libpq
from tests.metrics_support import parse_exposition, total

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.system]

JOBS = {
    "queue-maintenance",
    "history-pruning",
    "reconciliation-daily",
    "reconciliation-takeover",
    "reconciliation-catchup",
    "reconciliation-prune",
}
SHORT_INTERVALS = {
    "HUBSYNC_RECONCILE_CRON": "* * * * *",
    "HUBSYNC_RECONCILE_MODE": "dry_run",
    "HUBSYNC_CATCHUP_INTERVAL": "3s",
    "HUBSYNC_QUEUE_TICK_INTERVAL": "3s",
    "HUBSYNC_PRUNE_INTERVAL": "3s",
    "HUBSYNC_RECONCILE_LEASE": "4s",  # the takeover check every 2 s
    "HUBSYNC_LOG_LEVEL": "INFO",  # the log says which replica started or left each run
}
OLD, RECENT = "old", "recent"


def seed_history(database_url: str) -> dict[str, dict[str, Any]]:
    """Rows past their retention (done jobs 7 d, history 30 d, reports 90 d) and rows within
    it, by table: {table: {OLD: key, RECENT: key}}."""
    now = datetime.now(UTC)
    seeded: dict[str, dict[str, Any]] = {}
    with psycopg.connect(_libpq(database_url)) as connection:

        def insert(sql: str, *params: Any) -> Any:
            row = connection.execute(sql + " RETURNING id", params).fetchone()
            assert row is not None
            return row[0]

        seeded["hubspot_sync_queue"] = {
            age: insert(
                "INSERT INTO hubspot_sync_queue (entity_type, entity_key, state, finished_at) "
                "VALUES ('customer', %s, 'done', %s)",
                str(uuid.uuid4()),
                finished,
            )
            for age, finished in ((OLD, now - timedelta(days=8)), (RECENT, now))
        }
        seeded["hubspot_webhook_events"] = {
            age: insert(
                "INSERT INTO hubspot_webhook_events (dedup_key, subscription_type, raw, status, "
                "received_at) VALUES (%s, 'company.propertyChange', %s, 'processed', %s)",
                uuid.uuid4().hex,
                Jsonb({}),
                received,
            )
            for age, received in ((OLD, now - timedelta(days=31)), (RECENT, now))
        }
        seeded["hubspot_sync_log"] = {
            age: insert(
                "INSERT INTO hubspot_sync_log (warp_customer_id, source, direction, outcome, "
                "created_at) VALUES (%s, 'api', 'to_hubspot', 'updated', %s)",
                str(uuid.uuid4()),
                created,
            )
            for age, created in ((OLD, now - timedelta(days=31)), (RECENT, now))
        }
        seeded["hubspot_reconciliation_runs"] = {
            age: insert(
                "INSERT INTO hubspot_reconciliation_runs (mode, trigger, status, counts, "
                "started_at, finished_at) VALUES ('dry_run', 'api', 'done', %s, %s, %s)",
                Jsonb({}),
                started,
                started + timedelta(minutes=1),
            )
            for age, started in ((OLD, now - timedelta(days=91)), (RECENT, now - timedelta(days=1)))
        }
    return seeded


def ids_left(database_url: str, table: str, ids: list[Any]) -> set[Any]:
    with psycopg.connect(_libpq(database_url)) as connection:
        rows = connection.execute(f"SELECT id FROM {table} WHERE id = ANY(%s)", (ids,))
        return {row[0] for row in rows}


def scheduled_runs(database_url: str) -> list[tuple[str, int, str]]:
    with psycopg.connect(_libpq(database_url)) as connection:
        rows = connection.execute(
            "SELECT fire_key, count(*), min(status) FROM hubspot_reconciliation_runs "
            "WHERE trigger = 'schedule' GROUP BY fire_key ORDER BY fire_key"
        )
        return [(row[0], int(row[1]), row[2]) for row in rows]


def dashboard_jobs(service: Deployment) -> dict[str, dict[str, Any]]:
    answer = service.api("GET", "/v1/sync/dashboard")
    assert answer.status_code == 200, answer.text
    return {job["job"]: job for job in answer.json()["scheduled_jobs"]}


def test_every_job_runs_once_per_fire_time_and_prunes(postgres_url: str, tmp_path: Path) -> None:
    seeded = seed_history(postgres_url)
    with deployment(postgres_url, tmp_path, workers=2, extra_env=SHORT_INTERVALS) as service:

        def every_job_succeeded() -> dict[str, dict[str, Any]] | None:
            jobs = dashboard_jobs(service)
            done = {name for name, job in jobs.items() if job["last_success_at"]}
            return jobs if done >= JOBS else None

        # The daily run fires at the next whole minute: up to 60 s after start-up.
        jobs = wait_until(every_job_succeeded, 90, "every scheduled job succeeded")
        for name in JOBS:
            job = jobs[name]
            assert job["late"] is False, job
            assert re.fullmatch(r".+:\d+", job["ran_by"]), job  # host:pid of a replica
            assert job["next_fire_at"] is not None, job
        assert jobs["queue-maintenance"]["trigger"] == "every 3 s"
        assert jobs["reconciliation-daily"]["trigger"] == "cron * * * * * (UTC)"

        # Pruned by the running service: the old rows go, the recent ones stay.
        def pruned() -> bool:
            return all(
                ids_left(postgres_url, table, list(keys.values())) == {keys[RECENT]}
                for table, keys in seeded.items()
            )

        wait_until(pruned, 15, "old done jobs, history and reports pruned")

        # Seen by an operator: status --json and /metrics show every job with its success.
        status = service.cli_json("status")
        shown = {job["job"]: job for job in status["scheduled_jobs"]}
        assert set(shown) >= JOBS
        assert not any(shown[name]["late"] for name in JOBS)
        samples = parse_exposition(httpx.get(f"{service.base}/metrics", timeout=10).text)
        for name in JOBS:
            stamp = total(samples, "hubsync_scheduled_job_last_success_timestamp_seconds", job=name)
            assert stamp > datetime.now(UTC).timestamp() - 90, name

        # One run per fire time across both replicas; both replicas fired each one.
        first = scheduled_runs(postgres_url)[0][0]
        wait_until(
            lambda: all(state != "running" for _, _, state in scheduled_runs(postgres_url)),
            30,
            "the scheduled runs finished",
        )
        made = scheduled_runs(postgres_url)
    assert made, "no scheduled run"
    assert [count for _, count, _ in made] == [1] * len(made), made
    log = (tmp_path / "serve.log").read_text()
    for name in JOBS:  # each replica listed each job with its trigger at start-up
        assert log.count(f"scheduled job {name} (") == 2, name
    fired = re.findall(rf"scheduled reconciliation {re.escape(first)}: run \d+ (\w+)", log)
    # Each replica fired this fire time; one of them started its run, the other left it.
    assert sorted(fired) == ["on", "started"], fired
