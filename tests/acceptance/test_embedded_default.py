"""The README's run path: `hubsync serve` with no configuration on a fresh SQLite file."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_is_ready_within_30_seconds_and_syncs_the_demo_customers(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HUBSYNC_", "HUBSPOT_", "WARP_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env["HUBSYNC_MODE"] = "demo"  # what `make run` sets
    server = subprocess.Popen(  # noqa: S603 -- fixed argv
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=tmp_path,  # the default database is ./hubsync.db
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        ready = None
        while time.monotonic() - started < 30:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert ready is not None
        assert ready.status_code == 200, ready.text

        deadline = time.monotonic() + 20
        companies: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            companies = httpx.get(f"{base}/_hubspot/_sandbox/companies", timeout=5).json()[
                "results"
            ]
            if len(companies) == 5:
                break
            time.sleep(0.2)
        names = sorted(str(c["properties"]["name"]) for c in companies)  # type: ignore[index]
        assert names == [
            "Acme Telecom Ltd",
            "Globex Networks",
            "Initech Prepaid",
            "Stark Industries",
            "Umbrella Logistics",
        ]
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=20)
    # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean stop.
    assert server.returncode in (0, -15), stderr.decode()[-2000:]
    assert "Application shutdown complete" in stderr.decode()
    first_line = stderr.decode().splitlines()[0]
    assert "sandbox" in first_line
    with sqlite3.connect(tmp_path / "hubsync.db") as connection:
        linked = connection.execute(
            "SELECT count(*) FROM customers WHERE external_ids LIKE '%hubspot_company_id%'"
        ).fetchone()
    assert linked == (5,)
