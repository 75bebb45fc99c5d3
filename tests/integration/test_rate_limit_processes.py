"""The rate limit holds for a deployment: three processes, one PostgreSQL, one HubSpot.

Three OS processes (`ratelimit_hammer.py`) share `HUBSPOT_RATE_LIMIT=100/10s` through one
PostgreSQL database and call one sandbox, served by uvicorn in a fourth process, as fast as the
limiter lets them for 30 s. The sandbox's own request log is the judge: no 10-second window
over 100 requests, no 429, and at least 90% of what the limit allows (270 in 30 s).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT

PROCESSES = 3
SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the sandbox exited with {process.returncode}")
        try:
            httpx.get(f"{url}/_sandbox/stats", timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return
    pytest.fail("the sandbox did not start")


@pytest.mark.slow
@pytest.mark.postgres
def test_three_processes_share_one_limit(postgres_url: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "sandbox.log").open("wb") as sandbox_log:
        sandbox = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-c",
                f"from app.sandbox.app import run_sandbox; run_sandbox('127.0.0.1', {port})",
            ],
            cwd=REPO_ROOT,
            stdout=sandbox_log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_up(url, sandbox)
        env = {
            **os.environ,
            "HUBSYNC_DATABASE_URL": postgres_url,
            "HUBSPOT_BASE_URL": url,
            "HUBSPOT_ACCESS_TOKEN": "pat-hammer-test",
            "HUBSPOT_RATE_LIMIT": "100/10s",
        }
        start_at = time.time() + 4.0  # time for every process to import and connect
        hammers = [
            subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "tests.integration.ratelimit_hammer",
                    f"--start-at={start_at}",
                    f"--seconds={SECONDS}",
                    "--concurrency=10",
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(PROCESSES)
        ]
        reports = []
        for hammer in hammers:
            out, err = hammer.communicate(timeout=SECONDS + 60)
            assert hammer.returncode == 0, err.decode()[-2000:]
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
        stats = httpx.get(f"{url}/_sandbox/stats", timeout=5.0).json()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    sent = sum(report.get("ok", 0) for report in reports)
    assert all(set(report) <= {"ok"} for report in reports), reports
    assert stats["rate_limited"] == 0
    assert "429" not in stats["responses_by_status"]
    assert stats["requests"] == sent
    assert stats["max_requests_in_window"] <= 100
    # Every process got a share, and together they used at least 90% of the budget.
    assert all(report["ok"] > 0 for report in reports)
    assert sent >= 270, stats
