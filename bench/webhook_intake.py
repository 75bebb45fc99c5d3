"""Benchmark: signed HubSpot webhook deliveries into hubsync on PostgreSQL, over real HTTP.

Starts `hubsync serve` (uvicorn, worker and scheduler off) on a free loopback port against a
fresh PostgreSQL database, then drives it with an httpx.AsyncClient at a fixed concurrency:
deliveries of 1 event and of 100 events, every event distinct (nothing deduplicates), half of
the companies linked to a WARP customer. Reports deliveries/s, events/s and p50/p99 latency,
the median of several runs each. Bounded: each run stops after its delivery count or its time
cap, whichever comes first.

    .venv/bin/python -m bench.webhook_intake [--runs 3] [--concurrency 32]

PostgreSQL: HUBSYNC_BENCH_POSTGRES_URL (default postgresql+asyncpg://root@127.0.0.1:5432/postgres);
a database `hubsync_bench_<random>` is created, migrated, and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from app.cli import tune_garbage_collector
from app.logs import configure_logging
from app.main import create_app
from app.settings import Settings
from app.store.db import create_engine
from app.store.migrate import upgrade
from app.warp.schema import customers_table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ADMIN_URL = "postgresql+asyncpg://root@127.0.0.1:5432/postgres"
SECRET = "bench-client-secret"  # noqa: S105 - a throwaway secret for a throwaway server
PATH = "/v1/webhooks/hubspot"
LINKED_COMPANIES = 60_000  # every other company of the ~110,000 the bench touches


@dataclass(frozen=True)
class RunResult:
    deliveries: int
    events: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    server_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.deliveries / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc), to show the server's cost per delivery."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def libpq(url: str, database: str | None = None) -> str:
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    name = f"hubsync_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq(admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with psycopg.connect(libpq(admin_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def prepare(url: str) -> None:
    """Migrate, then link half the companies the bench will touch to WARP customers."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:  # WARP's table, which /readyz checks
            await connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS accounts")
            await connection.run_sync(customers_table("accounts.customers").create)
    finally:
        await engine.dispose()
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO hubspot_entity_links (warp_customer_id, hubspot_company_id, state) "
            "SELECT 'C-' || n, (1000000 + 2 * n)::text, 'active' "
            "FROM generate_series(1, %s) AS n",
            (LINKED_COMPANIES,),
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(
    url: str, port: int, workers: int = 1, output: int | None = None, root: Path = ROOT
) -> tuple[subprocess.Popen[bytes], list[str]]:
    """`hubsync serve` for one process; for several, uvicorn's own `--workers` over the same
    app (`app_from_env` below), since `hubsync serve` runs one process. `root`: the checkout
    whose code it runs (another one's, to compare with the code before a change)."""
    if workers == 1:
        command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--no-migrate"]
    else:
        factory = "bench.webhook_intake:app_from_env"
        command = [sys.executable, "-m", "uvicorn", "--factory", factory]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        command += ["--proxy-headers", "--log-level", "warning"]
    env = {
        **os.environ,
        "HUBSYNC_MODE": "demo",  # no HubSpot token: the built-in sandbox, never called here
        "HUBSYNC_DATABASE_URL": url,
        "HUBSPOT_CLIENT_SECRET": SECRET,
        "HUBSPOT_APP_ID": "4242",
        "HUBSYNC_WORKER": "false",
        "HUBSYNC_SCHEDULER": "false",
        "HUBSYNC_DEMO_DATA": "false",
        "HUBSYNC_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(root),
    }
    server = subprocess.Popen(command, cwd=root, env=env, stdout=output)  # noqa: S603 - our own command
    return server, command


def app_from_env() -> Starlette:
    """The app `hubsync serve` runs, for `uvicorn --factory … --workers N`."""
    settings = Settings.from_env()
    configure_logging(settings)
    app = create_app(settings)
    tune_garbage_collector()  # as `hubsync serve` does
    return app


def server_processes(pid: int) -> list[int]:
    """The server and, with uvicorn --workers, its worker processes (whose CPU counts)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(child) for child in children)]


async def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become ready within 30 s")


_company = itertools.count(1_000_000)
_moment = itertools.count(1_700_000_000_000)


def delivery(size: int) -> bytes:
    events = []
    for _ in range(size):
        company = next(_company)
        events.append(
            {
                "eventId": company,
                "subscriptionId": 7,
                "portalId": 62515,
                "appId": 4242,
                "occurredAt": next(_moment),
                "subscriptionType": "company.propertyChange",
                "attemptNumber": 0,
                "objectId": company,
                "propertyName": "name",
                "propertyValue": f"Company {company}",
                "changeSource": "CRM_UI",
                "sourceId": "userId:42",
            }
        )
    return json.dumps(events, separators=(",", ":")).encode()


def signed(base: str, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000))
    message = b"POST" + (base + PATH).encode() + body + timestamp.encode()
    digest = hmac.new(SECRET.encode(), message, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def raw_request(base: str, body: bytes) -> bytes:
    """One whole signed HTTP/1.1 request, built before the clock starts."""
    host = base.removeprefix("http://")
    headers = {"Host": host, "Content-Length": str(len(body)), **signed(base, body)}
    head = f"POST {PATH} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request on a kept-alive connection and read the whole answer; its status."""
    writer.write(request)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def run_once(
    base: str,
    *,
    size: int,
    deliveries: int,
    concurrency: int,
    cap_seconds: float,
    server_pids: Sequence[int] = (),
) -> RunResult:
    """`concurrency` kept-alive connections, each sending its next delivery when the last is
    answered. A minimal HTTP/1.1 client over asyncio streams rather than httpx: at these
    rates httpx costs more CPU per request than the server, on the same two cores."""
    requests = [raw_request(base, delivery(size)) for _ in range(deliveries)]
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    pending = iter(requests)

    async def sender() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for request in pending:
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                status = await exchange(reader, writer, request)
                latencies.append((time.perf_counter() - sent) * 1000)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    cpu_before = sum(process_cpu_seconds(pid) for pid in server_pids)
    client_before = time.process_time()
    started = time.perf_counter()
    deadline = started + cap_seconds
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return RunResult(
        len(latencies),
        len(latencies) * size,
        seconds,
        latencies,
        errors,
        server_cpu_seconds=sum(process_cpu_seconds(pid) for pid in server_pids) - cpu_before,
        client_cpu_seconds=time.process_time() - client_before,
    )


def report(label: str, runs: list[RunResult]) -> None:
    median = sorted(runs, key=lambda r: r.per_second)[len(runs) // 2]
    rates = ", ".join(f"{r.per_second:,.0f}" for r in runs)
    print(
        f"{label}: median {median.per_second:,.0f} deliveries/s "
        f"({median.events / median.seconds:,.0f} events/s), "
        f"p50 {statistics.median(median.latencies_ms):.1f} ms, "
        f"p99 {median.percentile(0.99):.1f} ms, "
        f"server CPU {median.server_cpu_seconds / median.deliveries * 1000:.2f} ms/delivery, "
        f"client CPU {median.client_cpu_seconds / median.seconds:.0%} of a core, "
        f"errors {sum(r.errors for r in runs)} [runs: {rates} deliveries/s]",
        flush=True,
    )


async def bench(args: argparse.Namespace, base: str, server_pids: list[int]) -> None:
    options: dict[str, Any] = {
        "concurrency": args.concurrency,
        "cap_seconds": 6.0,
        "server_pids": server_pids,
    }
    # Warm up: connections, the pool, the first statements' preparation.
    await run_once(base, size=1, deliveries=1000, **{**options, "cap_seconds": 3.0})
    single = [
        await run_once(base, size=1, deliveries=args.single, **options) for _ in range(args.runs)
    ]
    report("1 event/delivery   ", single)
    batch = [
        await run_once(base, size=100, deliveries=args.batch, **options) for _ in range(args.runs)
    ]
    report("100 events/delivery", batch)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--single", type=int, default=15000, help="1-event deliveries per run")
    parser.add_argument("--batch", type=int, default=600, help="100-event deliveries per run")
    args = parser.parse_args()
    admin_url = os.environ.get("HUBSYNC_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
    print(f"machine: {machine()}")
    invocation = [Path(sys.executable).name, "-m", "bench.webhook_intake", *sys.argv[1:]]
    print(f"command: {shlex.join(invocation)}")
    with bench_database(admin_url) as url:
        asyncio.run(prepare(url))
        port = free_port()
        server, command = start_server(url, port, args.workers)
        print(f"server:  {shlex.join(['python', *command[1:]])} (PostgreSQL, worker off)")
        print(f"load average before: {load_average()}", flush=True)
        try:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(wait_ready(base, server))
            time.sleep(0.5)  # with --workers, every worker up
            asyncio.run(bench(args, base, server_processes(server.pid)))
        finally:
            server.terminate()
            server.wait(timeout=10)
        print(f"load average after:  {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
