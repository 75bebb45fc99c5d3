"""Production never falls into the sandbox: real `hubsync serve` processes on PostgreSQL.

Synced with a token against HubSpot (a stand-alone sandbox process playing a real portal),
then restarted without the token, in demo mode, and against another portal: each refuses to
start with one line, and nothing in hubsync's tables or WARP's changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.acceptance.test_embedded_default import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "pat-na1-production-test"
API_TOKEN = "gateway-token-for-tests"
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HUBSYNC_", "HUBSPOT_", "WARP_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def wait_until_up(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}: {process.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def start_sandbox(portal_id: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 -- fixed argv
        [
            *(sys.executable, "-m", "app.cli", "sandbox", "--port", str(port)),
            *("--access-token", TOKEN, "--portal-id", str(portal_id)),
        ],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_up(f"{base}/_sandbox/stats", process)
    return process, base


def serve(env: dict[str, str], port: int, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """`hubsync serve` as a real process; its stderr is `stop`'s answer."""
    return subprocess.Popen(  # noqa: S603 -- fixed argv
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        process.terminate()
    _, stderr = process.communicate(timeout=30)
    return stderr.decode()


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def snapshot(url: str) -> dict[str, Any]:
    """Everything a wrong start could have changed: hubsync's HubSpot-side state and WARP."""
    tables = {
        "links": "SELECT warp_customer_id, hubspot_company_id, state FROM hubspot_entity_links",
        "field_state": "SELECT warp_customer_id, field, hubspot_value, base_value "
        "FROM hubspot_field_state",
        "aliases": "SELECT old_company_id, company_id FROM hubspot_company_aliases",
        "conflicts": "SELECT warp_customer_id, field, state FROM hubspot_conflicts",
        "portal": "SELECT kind, portal_id FROM hubsync_portal",
        "warp": "SELECT id::text, company_name, external_ids::text FROM accounts.customers",
    }
    with psycopg.connect(libpq(url)) as connection:
        return {
            name: sorted(tuple(map(str, row)) for row in connection.execute(sql).fetchall())  # type: ignore[arg-type]
            for name, sql in tables.items()
        }


def add_customers(url: str, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with psycopg.connect(libpq(url)) as connection:
        for number, customer_id in enumerate(ids, start=1):
            connection.execute(
                "INSERT INTO accounts.customers (id, ban, company_name, customer_type, status, "
                "credit_limit, current_balance, contact, services, external_ids, created_at, "
                "updated_at) VALUES (%s, %s, %s, 'POSTPAID', 'ACTIVE', 100, 1, %s, %s, '{}', "
                "now(), now())",
                (
                    customer_id,
                    f"ZT-{900000000 + number}",
                    f"Production Customer {number}",
                    json.dumps({"email": f"billing@prod{number}.example"}),
                    json.dumps({"voice": {"enabled": True}}),
                ),
            )
    return ids


@pytest.fixture
def portal_a() -> Iterator[str]:
    process, base = start_sandbox(portal_id=62515)
    yield base
    stop(process)


def test_a_production_database_never_starts_on_the_sandbox_or_another_portal(
    postgres_url: str, portal_a: str
) -> None:
    production = clean_env(
        HUBSYNC_DATABASE_URL=postgres_url,
        HUBSPOT_ACCESS_TOKEN=TOKEN,
        HUBSPOT_BASE_URL=portal_a,
        HUBSPOT_CLIENT_SECRET="webhook-secret-for-tests",
        HUBSYNC_API_TOKENS=API_TOKEN,
    )
    ids = add_customers(postgres_url, 3)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(production, port)
    try:
        wait_until_up(f"{base}/readyz", server)
        assert httpx.get(f"{base}/_hubspot/_sandbox/companies").status_code == 404
        assert httpx.post(f"{base}/_hubspot/_sandbox/reset").status_code in (404, 405)
        queued = httpx.post(
            f"{base}/v1/sync/customers/queue",
            json={"customer_ids": ids},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        assert queued.status_code == 202, queued.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(snapshot(postgres_url)["links"]) < 3:
            time.sleep(0.2)
    finally:
        stop(server)
    before = snapshot(postgres_url)
    assert len(before["links"]) == 3
    assert before["portal"] == [("hubspot", "62515")]
    assert all("hubspot_company_id" in row[2] for row in before["warp"])

    def refused(env: dict[str, str]) -> str:
        process = serve(env, free_port())
        try:
            process.wait(timeout=60)
        finally:
            stderr = stop(process)
        assert process.returncode == 2, stderr
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1, stderr
        assert snapshot(postgres_url) == before
        return lines[0]

    without_token = {k: v for k, v in production.items() if k != "HUBSPOT_ACCESS_TOKEN"}
    assert "HUBSPOT_ACCESS_TOKEN is not set" in refused(without_token)
    demo = {**without_token, "HUBSYNC_MODE": "demo"}
    line = refused(demo)
    assert "refusing to start" in line
    assert "HubSpot portal 62515" in line
    assert "hubsync relink --reset" in line
    other, other_base = start_sandbox(portal_id=777)
    try:
        line = refused({**production, "HUBSPOT_BASE_URL": other_base})
    finally:
        stop(other)
    assert "portal 62515" in line
    assert "portal 777" in line
