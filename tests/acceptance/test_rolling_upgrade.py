"""A rolling upgrade from the previous release, rehearsed as a cluster would run it.

The previous release (0.1.0, `PREVIOUS_RELEASE`, extracted with `git archive`) serves on
PostgreSQL with a `hubsync sandbox` for HubSpot, a few hundred customers synced, and a client
that keeps changing customers in WARP, queueing their jobs and reading the API. Then, as the
chart does: today's `hubsync migrate`; today's `hubsync serve` started beside the old one (same
database, another port) and put in rotation once ready; the old one taken out of rotation and
stopped with SIGTERM. Observed from outside only (HTTP, SQL, the sandbox's API):

- no request failed: every answer is the expected 2xx, none refused or cut off. The old release
  predates expand/contract, so its `/readyz` may drop after the migration (it is recorded, not
  held against it); its requests must not fail.
- no job was lost or done twice: every job queued is done, synced once in the sync log, and
  its change reached HubSpot as exactly one new version of the company's name.
- no link changed, and no company was made twice.

Found by this rehearsal: a migration that changes the type of a column the old release reads
(0012 once widened varchar(64) to text) makes PostgreSQL refuse the old release's prepared
statements on that table ("cached plan must not change result type"): a 500 on an API read,
or a failed worker batch, once per pooled connection. Migrations only add (0012 adds `text`
columns beside the old ones), so any such 500, or such an error in the old release's log,
fails this test.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from app.store.migrate import head_revision
from app.warp.schema import customers_table
from tests.acceptance.deployment import (
    ACCESS_TOKEN,
    API_TOKEN,
    HUBSYNC,
    ROOT,
    clean_env,
    free_port,
    service_env,
    start_sandbox,
    start_server,
    stop,
    wait_ready,
    wait_until,
)
from tests.conftest import IN_CI, _admin, _libpq, postgres_admin_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PREVIOUS_RELEASE = "6c1700d"  # 0.1.0: the last commit before this release's work
PREVIOUS_HEAD = "0007"  # its schema revision
CUSTOMERS = 300
TRAFFIC_PAUSE = 0.05  # between the client's rounds: a steady, modest load on a shared machine


def previous_release(tmp_path: Path) -> Path:
    """The previous release's source tree, or a skip when git history is not here (a failure
    under CI, where the rehearsal must really run)."""
    found = subprocess.run(  # noqa: S603 -- fixed argv
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        message = f"git history with commit {PREVIOUS_RELEASE} (the previous release) is needed"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    tree = tmp_path / "previous"
    tree.mkdir()
    archive = subprocess.run(  # noqa: S603 -- fixed argv
        ["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE],  # noqa: S607
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)  # noqa: S603,S607
    return tree


@pytest.fixture
def database_url() -> Iterator[str]:
    """An empty PostgreSQL database (no schema yet: the previous release migrates it)."""
    try:
        _admin("SELECT 1")
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"hubsync_upgrade_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_admin_url()).set(database=name).render_as_string(False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_cli(code: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 -- fixed argv
        [*HUBSYNC, *args],
        env=clean_env({**env, "PYTHONPATH": str(code)}),
        cwd=code,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def create_warp(database_url: str, count_: int) -> list[str]:
    """WARP's customers table beside hubsync's, with `count_` customers."""
    engine = create_engine(make_url(database_url).set(drivername="postgresql+psycopg"))
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS accounts")
            customers_table("accounts.customers").create(connection)
    finally:
        engine.dispose()
    ids = [str(uuid.uuid4()) for _ in range(count_)]
    with psycopg.connect(_libpq(database_url)) as connection, connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO accounts.customers (id, ban, company_name, customer_type, status, "
            "credit_limit, current_balance, contact, services, external_ids) "
            "VALUES (%s, %s, %s, 'POSTPAID', 'ACTIVE', 1000, 0, %s, %s, %s)",
            [
                (
                    customer_id,
                    f"RU-{800000000 + n}",
                    f"Upgrade Customer {n}",
                    Jsonb({"email": f"billing@upgrade{n}.example"}),
                    Jsonb({"voice": {"enabled": True}}),
                    Jsonb({}),
                )
                for n, customer_id in enumerate(ids)
            ],
        )
    return ids


def sql(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(_libpq(database_url)) as connection:
        # psycopg types its query as a LiteralString; these are the module's own constants.
        return connection.execute(query, params).fetchall()  # type: ignore[arg-type]


def links(database_url: str) -> dict[str, tuple[str, str]]:
    """Customer -> (company, state) for every link."""
    rows = sql(
        database_url,
        "SELECT warp_customer_id, hubspot_company_id, state FROM hubspot_entity_links",
    )
    return {str(customer): (str(company), str(state)) for customer, company, state in rows}


@dataclass
class Request:
    server: str
    what: str
    outcome: int | str  # the status, or the transport error's name


@dataclass
class Traffic:
    """The client: changes customers in WARP one after another (each once), queues each one's
    job on a server in rotation, and reads the job and the customer back; round-robin over the
    servers in rotation, as a Service spreads requests over ready pods."""

    database_url: str
    customers: list[str]
    rotation: list[str]
    requests: list[Request] = field(default_factory=list)
    jobs: dict[int, tuple[str, str, str]] = field(
        default_factory=dict
    )  # job -> customer, name, server
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="traffic", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        assert self.thread is not None
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()

    def set_rotation(self, servers: list[str]) -> None:
        """Takes effect between requests: a request in flight finishes where it started."""
        with self.lock:
            self.rotation = servers

    def jobs_via(self, server: str) -> int:
        with self.lock:
            return sum(1 for *_, via in self.jobs.values() if via == server)

    def run(self) -> None:
        turn = count()
        pending = iter(enumerate(self.customers))
        with httpx.Client(headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30) as client:
            while not self.stopping.is_set():
                with self.lock:  # held for the whole round: set_rotation waits for it
                    server = self.rotation[next(turn) % len(self.rotation)]
                    self.round(client, server, next(pending, None))
                time.sleep(TRAFFIC_PAUSE)

    def round(self, client: httpx.Client, server: str, nth: tuple[int, str] | None) -> None:
        customer = self.customers[0] if nth is None else nth[1]
        if nth is not None:  # every customer changes once; then only reads
            name = f"Upgraded Name {nth[0]}"
            with psycopg.connect(_libpq(self.database_url)) as connection:
                connection.execute(
                    "UPDATE accounts.customers SET company_name = %s, updated_at = now() "
                    "WHERE id = %s",
                    (name, customer),
                )
            answer = self.call(client, server, "POST", f"/v1/sync/customers/{customer}/queue", 202)
            if answer is not None:
                job_id = int(answer.json()["job_id"])
                self.jobs[job_id] = (customer, name, server)
                self.call(client, server, "GET", f"/v1/sync/jobs/{job_id}", 200)
        self.call(client, server, "GET", f"/v1/sync/customers/{customer}", 200)
        self.call(client, server, "GET", "/v1/sync/dashboard", 200)

    def call(
        self, client: httpx.Client, server: str, method: str, path: str, expected: int
    ) -> httpx.Response | None:
        what = f"{method} {path}"
        try:
            answer = client.request(method, server + path, json={} if method == "POST" else None)
        except httpx.HTTPError as exc:
            self.requests.append(Request(server, what, type(exc).__name__))
            return None
        self.requests.append(Request(server, what, answer.status_code))
        return answer if answer.status_code == expected else None


def synced(database_url: str) -> int:
    """Customers linked to a company whose id hubsync wrote back to WARP."""
    rows = sql(
        database_url,
        "SELECT count(*) FROM accounts.customers c JOIN hubspot_entity_links l "
        "ON l.warp_customer_id = c.id::text AND l.state = 'active' "
        "WHERE c.external_ids ->> 'hubspot_company_id' = l.hubspot_company_id",
    )
    return int(rows[0][0])


def api(base: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    return httpx.request(method, base + path, headers=headers, timeout=30, **kwargs)


def seed(database_url: str, old_base: str, ids: list[str]) -> dict[str, tuple[str, str]]:
    """Real data: every customer synced by the previous release; the links it made."""
    bulk = api(old_base, "POST", "/v1/sync/customers/queue", json={"customer_ids": ids})
    assert bulk.status_code == 202, bulk.text
    wait_until(lambda: synced(database_url) == len(ids), 90, "all synced by the old release")
    made = links(database_url)
    assert len(made) == len(ids)
    return made


def assert_every_job_done_once(database_url: str, new_base: str, jobs: list[int]) -> None:
    """Done, seen through the new release's API; one successful sync each in the sync log."""

    def state(job_id: int) -> str:
        answer = api(new_base, "GET", f"/v1/sync/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        return str(answer.json()["state"])

    wait_until(lambda: all(state(job) == "done" for job in jobs), 60, "every queued job done")
    syncs = sql(
        database_url,
        "SELECT job_id, count(*) FROM hubspot_sync_log "
        "WHERE job_id = ANY(%s) AND outcome <> 'failed' GROUP BY job_id",
        jobs,
    )
    assert dict(syncs) == dict.fromkeys(jobs, 1)


def assert_each_change_reached_hubspot_once(
    sandbox_url: str, companies: dict[str, str], changes: list[tuple[str, str]]
) -> None:
    """Each changed name is one new version of its company's name in HubSpot, over the one
    the previous release created; and no company was made twice."""
    stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
    assert stats["companies"] == len(companies)
    assert not any(code.startswith("5") for code in stats["responses_by_status"])
    with httpx.Client(
        base_url=sandbox_url, headers={"Authorization": f"Bearer {ACCESS_TOKEN}"}, timeout=10
    ) as hubspot:
        for customer, name in changes:
            company = hubspot.get(
                f"/crm/objects/2026-03/companies/{companies[customer]}",
                params={"propertiesWithHistory": "name"},
            ).json()
            versions = [v["value"] for v in company["propertiesWithHistory"]["name"]]
            assert versions == [name, versions[-1]], (customer, versions)  # newest first


def test_rolling_upgrade_from_the_previous_release_under_traffic_loses_nothing(
    database_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    previous = previous_release(tmp_path)
    sandbox_port, old_port, new_port = free_port(), free_port(), free_port()
    env = service_env(database_url, sandbox_port)
    migrated = run_cli(previous, env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert sql(database_url, "SELECT version_num FROM alembic_version") == [(PREVIOUS_HEAD,)]
    ids = create_warp(database_url, CUSTOMERS)

    sandbox = start_sandbox(sandbox_port)
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    old_base, new_base = f"http://127.0.0.1:{old_port}", f"http://127.0.0.1:{new_port}"
    old = start_server(env, old_port, tmp_path / "old.log", code=previous)
    new: subprocess.Popen[bytes] | None = None
    traffic = Traffic(database_url, ids[: CUSTOMERS // 2], [old_base])
    try:
        wait_ready(old_base)
        before = seed(database_url, old_base, ids)
        seeded = time.monotonic()
        traffic.start()
        wait_until(lambda: traffic.jobs_via(old_base) >= 10, 30, "traffic on the old release")

        # 1. Today's migration, under the old release's traffic.
        upgrade = run_cli(ROOT, env, "migrate")
        assert upgrade.returncode == 0, upgrade.stderr
        assert f"migrated to {head_revision()}" in upgrade.stdout, upgrade.stdout
        old_ready_after_migration = httpx.get(f"{old_base}/readyz", timeout=5).status_code

        # 2. Today's serve beside it, in rotation once ready.
        new = start_server(env, new_port, tmp_path / "new.log")
        wait_ready(new_base)
        traffic.set_rotation([old_base, new_base])
        jobs_on_old = traffic.jobs_via(old_base)
        wait_until(lambda: traffic.jobs_via(new_base) >= 10, 30, "traffic on both")
        assert traffic.jobs_via(old_base) > jobs_on_old, "the old release kept taking jobs"

        # 3. The old one out of rotation (its endpoint removed), then stopped.
        traffic.set_rotation([new_base])
        stop(old)
        on_new = traffic.jobs_via(new_base)
        wait_until(lambda: traffic.jobs_via(new_base) >= on_new + 10, 30, "traffic on the new")
        traffic.stop()

        failed = [r for r in traffic.requests if r.outcome not in (200, 202)]
        assert failed == [], failed[:10]
        # Nor did a worker batch of the old release fail on a statement the migration spoilt.
        old_log = (tmp_path / "old.log").read_text(errors="replace")
        assert "cached statement plan is invalid" not in old_log
        assert_every_job_done_once(database_url, new_base, list(traffic.jobs))
        assert_each_change_reached_hubspot_once(
            sandbox_url,
            {customer: company for customer, (company, _) in before.items()},
            [(customer, name) for customer, name, _ in traffic.jobs.values()],
        )
        assert links(database_url) == before  # no link changed
        print(
            f"{len(traffic.requests)} requests, {len(traffic.jobs)} jobs "
            f"({traffic.jobs_via(old_base)} on the old release), old /readyz after the "
            f"migration: {old_ready_after_migration}; seeding {seeded - started:.1f} s, "
            f"upgrade {time.monotonic() - seeded:.1f} s"
        )
    finally:
        if traffic.thread is not None and traffic.thread.is_alive():
            traffic.stopping.set()
            traffic.thread.join(timeout=30)
        stop(*(p for p in (old, new) if p is not None), sandbox)
