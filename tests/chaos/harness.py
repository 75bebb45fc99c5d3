"""The convergence suite's machinery: a HubSpot sandbox process, hubsync service processes on
one PostgreSQL database, random edits on both sides, and what the rules say the end state is.

Everything runs as separate processes on loopback ports chosen by the OS, as in production:
the sandbox delivers signed webhooks to service A; both services run the queue worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import REPO_ROOT

API_TOKEN = "chaos-gateway-token"
SECRET = "chaos-webhook-secret"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    name: str
    port: int
    process: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


async def spawn(name: str, args: list[str], env: dict[str, str], logs: Path, port: int) -> Proc:
    log = logs / f"{name}.log"
    handle = log.open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", *args,
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        stdout=handle, stderr=handle,
    )  # fmt: skip
    handle.close()
    return Proc(name, port, process, log)


async def wait_ready(proc: Proc, path: str, within: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if not proc.alive:
                raise AssertionError(f"{proc.name} exited: {proc.log.read_text()[-3000:]}")
            try:
                if (await client.get(proc.url + path)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{proc.name} not ready: {proc.log.read_text()[-3000:]}")
            await asyncio.sleep(0.2)


async def stop(proc: Proc) -> None:
    if proc.alive:
        proc.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await proc.process.wait()
        except TimeoutError:
            proc.process.kill()
            await proc.process.wait()


@dataclass
class Cluster:
    """The sandbox and the hubsync services of one run."""

    database_url: str
    logs: Path
    sandbox: Proc | None = None
    services: dict[str, Proc] = field(default_factory=dict)

    def service_env(self, port: int) -> dict[str, str]:
        assert self.sandbox is not None
        return {
            "HUBSYNC_DATABASE_URL": self.database_url,
            "WARP_CUSTOMERS_TABLE": "accounts.customers",
            "HUBSPOT_ACCESS_TOKEN": "chaos-private-app-token",
            "HUBSPOT_BASE_URL": self.sandbox.url,
            "HUBSPOT_CLIENT_SECRET": SECRET,
            "HUBSPOT_APP_ID": "1",
            "HUBSPOT_RATE_LIMIT": "1000/1s",
            "HUBSYNC_API_TOKENS": API_TOKEN,
            "HUBSYNC_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "HUBSYNC_SCHEDULER": "false",
            "HUBSYNC_DEMO_DATA": "false",
            "HUBSYNC_LEASE_SECONDS": "3",
            "HUBSYNC_RETRY_BASE_SECONDS": "0.1",
            "HUBSYNC_RETRY_MAX_DELAY": "3s",
            "HUBSYNC_WORKER_POLL_INTERVAL": "0.2s",
            "HUBSYNC_WORKER_CONCURRENCY": "2",
            "HUBSYNC_LOG_LEVEL": "WARNING",
            "HUBSYNC_LOG_FORMAT": "text",
        }

    async def start_sandbox(self, webhook_port: int) -> None:
        port = free_port()
        args = [
            "sandbox", "--port", str(port), "--client-secret", SECRET, "--app-id", "1",
            "--rate-limit", "1000/1s",
            "--webhook-url", f"http://127.0.0.1:{webhook_port}/v1/webhooks/hubspot",
        ]  # fmt: skip
        self.sandbox = await spawn("sandbox", args, {}, self.logs, port)
        await wait_ready(self.sandbox, "/_sandbox/stats")

    async def start_service(self, name: str, port: int | None = None) -> Proc:
        port = port or free_port()
        args = ["serve", "--port", str(port)]
        proc = await spawn(name, args, self.service_env(port), self.logs, port)
        self.services[name] = proc
        await wait_ready(proc, "/readyz")
        return proc

    async def stop_all(self) -> None:
        for proc in self.services.values():
            await stop(proc)
        if self.sandbox is not None:
            await stop(self.sandbox)


@asynccontextmanager
async def cluster(database_url: str, logs: Path) -> AsyncIterator[Cluster]:
    """Service A (webhook target) and B, both running the worker, and the sandbox."""
    running = Cluster(database_url, logs)
    port_a = free_port()
    try:
        await running.start_sandbox(port_a)
        await running.start_service("a", port_a)
        await running.start_service("b")
        yield running
    finally:
        await running.stop_all()


def hubspot_faults(seed: int, rate: float) -> dict[str, Any]:
    return {
        "error_rate": rate,
        "statuses": [429, 500, 502, 503, 504],  # 504: HubSpot's gateway timing out
        "seed": seed,
        "duplicate_webhooks": 0.2,
        "reorder_webhooks": True,
        "retry_after_seconds": 1,
    }
