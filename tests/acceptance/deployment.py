"""A production-shaped deployment on this machine: `hubsync sandbox` standing in for HubSpot
and `hubsync serve --workers N` on PostgreSQL, both as real processes on free ports, and the
`hubsync` command run against them as an operator would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
HUBSYNC = [sys.executable, "-m", "app.cli"]
ACCESS_TOKEN = "sandbox-access-token-for-tests"
CLIENT_SECRET = "sandbox-client-secret-for-tests"
API_TOKEN = "deployment-api-token-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HUBSYNC_", "HUBSPOT_", "WARP_", "PROMETHEUS_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@dataclass
class Deployment:
    base: str  # hubsync
    sandbox: str  # the stand-in HubSpot
    env: dict[str, str]  # what the `hubsync` command needs to reach the same database
    metrics_dir: Path

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {API_TOKEN}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def sandbox_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.sandbox}/_sandbox/stats", timeout=5).json()
        return stats

    def set_faults(self, **faults: Any) -> None:
        answer = httpx.put(f"{self.sandbox}/_sandbox/faults", json=faults, timeout=5)
        assert answer.status_code == 200, answer.text

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 -- fixed argv
            [*HUBSYNC, *args],
            env=clean_env(self.env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.HTTPError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def start_sandbox(port: int, deliver: list[str] | None = None) -> subprocess.Popen[bytes]:
    """`deliver`: the sandbox's --webhook-url arguments, when it should send webhooks."""
    return subprocess.Popen(  # noqa: S603 -- fixed argv
        [
            *HUBSYNC,
            "sandbox",
            "--port",
            str(port),
            "--access-token",
            ACCESS_TOKEN,
            "--client-secret",
            CLIENT_SECRET,
            "--rate-limit",
            "1000/1s",
            *(deliver or []),
        ],
        env=clean_env({}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def service_env(
    database_url: str, sandbox_port: int, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """What a `hubsync serve` (or the `hubsync` command) needs to reach the deployment."""
    return {
        "HUBSYNC_DATABASE_URL": database_url,
        "WARP_CUSTOMERS_TABLE": "accounts.customers",
        "HUBSPOT_ACCESS_TOKEN": ACCESS_TOKEN,
        "HUBSPOT_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
        "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
        "HUBSPOT_RATE_LIMIT": "1000/1s",
        "HUBSYNC_API_TOKENS": API_TOKEN,
        "HUBSYNC_RETRY_BASE_SECONDS": "0.2",
        "HUBSYNC_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }


def start_server(
    env: dict[str, str], port: int, log_path: Path, workers: int = 1, code: Path = ROOT
) -> subprocess.Popen[bytes]:
    """`code`: the source tree to run (another release's, extracted with `git archive`); it is
    both PYTHONPATH and the working directory, since `python -m` puts the latter first."""
    with log_path.open("wb") as log:  # the child keeps its own handle
        return subprocess.Popen(  # noqa: S603 -- fixed argv
            [*HUBSYNC, "serve", "--port", str(port), "--workers", str(workers)],
            env=clean_env({**env, "PYTHONPATH": str(code)}),
            cwd=code,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_ready(base: str) -> None:
    wait_until(lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200, 60, "ready")


@contextmanager
def deployment(
    database_url: str,
    tmp_path: Path,
    workers: int = 2,
    extra_env: dict[str, str] | None = None,
    *,
    webhooks: bool = False,
) -> Iterator[Deployment]:
    """`extra_env`: more settings for the `serve` processes (e.g. short scheduler intervals);
    `webhooks`: the sandbox delivers its webhooks to the service."""
    sandbox_port, port = free_port(), free_port()
    deliver = ["--webhook-url", f"http://127.0.0.1:{port}/v1/webhooks/hubspot"] if webhooks else []
    sandbox = start_sandbox(sandbox_port, deliver)
    metrics_dir = tmp_path / "metrics"
    env = service_env(database_url, sandbox_port, extra_env)
    server = start_server(
        {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        port,
        tmp_path / "serve.log",
        workers,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        yield Deployment(base, f"http://127.0.0.1:{sandbox_port}", env, metrics_dir)
    finally:
        stop(server, sandbox)


@dataclass
class Replica:
    """One `hubsync serve` process of several sharing a database and a HubSpot."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {API_TOKEN}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=30, **kwargs)


@dataclass
class Replicas:
    servers: list[Replica]
    sandbox: str
    env: dict[str, str]

    def sandbox_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.sandbox}/_sandbox/stats", timeout=5).json()
        return stats

    def set_faults(self, **faults: Any) -> None:
        answer = httpx.put(f"{self.sandbox}/_sandbox/faults", json=faults, timeout=5)
        assert answer.status_code == 200, answer.text


@contextmanager
def replicas(
    database_url: str, tmp_path: Path, count: int = 2, extra_env: dict[str, str] | None = None
) -> Iterator[Replicas]:
    """`count` separate `hubsync serve` processes (one worker each) on one database, with one
    `hubsync sandbox` for HubSpot: replicas as a cluster runs them."""
    sandbox_port = free_port()
    sandbox = start_sandbox(sandbox_port)
    env = {**service_env(database_url, sandbox_port), **(extra_env or {})}
    servers: list[Replica] = []
    try:
        for n in range(count):
            port = free_port()
            log = tmp_path / f"serve-{n}.log"
            servers.append(Replica(f"http://127.0.0.1:{port}", start_server(env, port, log), log))
        for server in servers:
            wait_ready(server.base)
        yield Replicas(servers, f"http://127.0.0.1:{sandbox_port}", env)
    finally:
        stop(*(server.process for server in servers), sandbox)
