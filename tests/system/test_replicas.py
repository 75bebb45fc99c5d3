"""Replicas never collide, seen from outside: two `hubsync serve` processes on one PostgreSQL
and one `hubsync sandbox` for HubSpot, observed only through hubsync's HTTP API, SQL on WARP's
customers table and the sandbox's API.

- The replicas bulk-enqueue overlapping sets of 3,000 ids 20 times, ten each, concurrently
  (before the fix, the first such pair already deadlocked): no answer is a 5xx, and every
  customer is queued and synced, exactly one company each.
- A replica killed with `kill -9` while its worker holds jobs: the other replica finishes
  those jobs once their lease has run out.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.acceptance.deployment import Replica, replicas, wait_until
from tests.conftest import _libpq

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.system]

LEASE_SECONDS = 3
ROUNDS = 10  # per replica: 20 bulk enqueues of 3,000 ids in all


def add_customers(database_url: str, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with psycopg.connect(_libpq(database_url)) as connection, connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO accounts.customers (id, ban, company_name, customer_type, status, "
            "credit_limit, current_balance, contact, services, external_ids) "
            "VALUES (%s, %s, %s, 'POSTPAID', 'ACTIVE', 1000, 0, %s, %s, %s)",
            [
                (
                    customer_id,
                    f"ZT-{700000000 + n}",
                    f"Replica Customer {n}",
                    Jsonb({"email": f"billing@replica{n}.example"}),
                    Jsonb({"voice": {"enabled": True}}),
                    Jsonb({}),
                )
                for n, customer_id in enumerate(ids)
            ],
        )
    return ids


def synced_in_warp(database_url: str, ids: list[str]) -> int:
    """Customers whose WARP row carries the HubSpot company id hubsync wrote back."""
    with psycopg.connect(_libpq(database_url)) as connection:
        row = connection.execute(
            "SELECT count(*) FROM accounts.customers "
            "WHERE id = ANY(%s::uuid[]) AND external_ids ? 'hubspot_company_id'",
            (ids,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def bulk_rounds(replica: Replica, ids: list[str], rounds: int, seed: int) -> list[int]:
    shuffler = random.Random(seed)
    statuses = []
    for _ in range(rounds):
        order = ids[:]
        shuffler.shuffle(order)
        answer = replica.api("POST", "/v1/sync/customers/queue", json={"customer_ids": order})
        statuses.append(answer.status_code)
    return statuses


def test_two_replicas_bulk_enqueue_overlapping_ids_without_a_5xx_and_sync_every_one(
    postgres_url: str, tmp_path: Path
) -> None:
    ids = add_customers(postgres_url, 3500)
    first, second = ids[:3000], ids[500:]  # 2,500 ids in common
    with replicas(postgres_url, tmp_path) as cluster:
        a, b = cluster.servers
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=2) as pool:
            from_a = pool.submit(bulk_rounds, a, first, ROUNDS, 1)
            from_b = pool.submit(bulk_rounds, b, second, ROUNDS, 2)
            statuses = from_a.result() + from_b.result()
        enqueueing = time.monotonic() - started
        assert statuses == [202] * 2 * ROUNDS, statuses
        wait_until(
            lambda: synced_in_warp(postgres_url, ids) == len(ids),
            90,
            f"every customer synced (enqueueing took {enqueueing:.1f} s)",
        )
        print(f"enqueue {enqueueing:.1f} s, all synced {time.monotonic() - started:.1f} s")
        stats = cluster.sandbox_stats()
        assert stats["companies"] == len(ids)  # one company per customer, none twice
        assert not any(code.startswith("5") for code in stats["responses_by_status"])
        for server in cluster.servers:
            log = server.log.read_text(errors="replace")
            assert "deadlock detected" not in log or "aborted by the database" in log


def job_of(replica: Replica, job_id: int) -> dict[str, object]:
    answer = replica.api("GET", f"/v1/sync/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    document: dict[str, object] = answer.json()
    return document


def test_the_jobs_of_a_replica_killed_mid_batch_finish_on_the_other_after_the_lease(
    postgres_url: str, tmp_path: Path
) -> None:
    ids = add_customers(postgres_url, 30)
    settings = {"HUBSYNC_LEASE_SECONDS": str(LEASE_SECONDS)}
    with replicas(postgres_url, tmp_path, extra_env=settings) as cluster:
        victim, survivor = cluster.servers
        cluster.set_faults(latency_ms=4000)  # every HubSpot call hangs: batches stay held
        job_ids = []
        for customer_id in ids:
            answer = victim.api("POST", f"/v1/sync/customers/{customer_id}/queue", json={})
            assert answer.status_code == 202, answer.text
            job_ids.append(int(answer.json()["job_id"]))
        marker = f":{victim.process.pid}:"

        def held_by_victim() -> list[dict[str, object]]:
            jobs = [job_of(survivor, job_id) for job_id in job_ids]
            return [j for j in jobs if j["state"] == "running" and marker in str(j["locked_by"])]

        wait_until(held_by_victim, 20, "the victim's worker holds jobs")
        os.kill(victim.process.pid, signal.SIGKILL)
        killed_at = datetime.now(UTC)
        victim.process.wait(timeout=10)
        # What the dead worker held when it died (it can no longer finish anything, and the
        # survivor cannot take it before the lease, seconds away).
        held = held_by_victim()
        assert held, "the victim finished its batch before it was killed"
        cluster.set_faults(latency_ms=0)

        def all_done() -> bool:
            return all(job_of(survivor, job_id)["state"] == "done" for job_id in job_ids)

        wait_until(all_done, 60, "every job done by the surviving replica")
        wait_until(lambda: synced_in_warp(postgres_url, ids) == len(ids), 30, "all synced")
        for job in held:
            record = job_of(survivor, int(str(job["job_id"])))
            lease_until = datetime.fromisoformat(str(job["lease_until"]))
            finished_at = datetime.fromisoformat(str(record["finished_at"]))
            assert finished_at > lease_until  # not before the dead worker's lease ran out
            assert finished_at > killed_at
            assert record["attempts"] == 2  # the dead worker's try, then the survivor's
        assert cluster.sandbox_stats()["companies"] == len(ids)
