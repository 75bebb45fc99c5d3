"""HubSpot's official Node client (`@hubspot/api-client`, pinned in tests/node_client/) against
the sandbox over HTTP, beside the Python client's test (test_sandbox_official_client.py).

The checks live in tests/node_client/checks.js, which prints one JSON line of results; this
test serves the sandboxes, runs it with `node`, and fails on any check that failed. Without
`node` the test is skipped, except under CI=true, where it must run. When the client is not
installed yet it is installed from the committed lock file (`npm ci`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from app.sandbox.config import SandboxConfig
from app.settings import RateLimit
from tests.sandbox_server import served_sandbox

NODE_CLIENT = Path(__file__).resolve().parent.parent / "node_client"
TOKEN = "pat-node-client-test"
CHECKS = 12  # the named checks in checks.js; a check that vanished would not fail otherwise


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is required under CI to run HubSpot's Node client")
        pytest.skip("node is not installed")
    return node


def _installed() -> None:
    if (NODE_CLIENT / "node_modules" / "@hubspot" / "api-client").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install HubSpot's Node client (tests/node_client)")
    lock = (NODE_CLIENT / "package-lock.json").is_file()
    command = [npm, "ci" if lock else "install", "--no-audit", "--no-fund"]
    done = subprocess.run(  # noqa: S603 - npm from PATH, fixed arguments
        command, cwd=NODE_CLIENT, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _config(rate_limit: RateLimit) -> SandboxConfig:
    return SandboxConfig(
        access_token=TOKEN,
        rate_limit=rate_limit,
        search_rate_limit=RateLimit(100_000, 1.0),
        search_index_delay_seconds=0,
    )


def test_hubspots_node_client_passes_every_check() -> None:
    node = _node()
    _installed()
    roomy, tight = _config(RateLimit(100_000, 10.0)), _config(RateLimit(3, 10.0))
    with served_sandbox(roomy) as served, served_sandbox(tight) as limited:
        env = {
            **os.environ,
            "SANDBOX_URL": served.url,
            "TIGHT_SANDBOX_URL": limited.url,
            "SANDBOX_TOKEN": TOKEN,
        }
        done = subprocess.run(  # noqa: S603 - node from PATH, a script of this repository
            [node, "checks.js"],
            cwd=NODE_CLIENT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert limited.sandbox.rate_limited >= 1  # the 429 came from the limit, not a fault
        assert served.sandbox.stats()["faults_injected"] == 0
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    results = json.loads(lines[-1])["results"]
    failed = {r["name"]: r["error"] for r in results if not r["ok"]}
    assert not failed, json.dumps(failed, indent=2)
    assert len(results) == CHECKS
    assert done.returncode == 0, done.stderr[-2000:]
