"""Benchmark: hubsync's webhook intake against the bare floor, side by side, one load client.

The floor is the least a webhook receiver can do: a Starlette app (`floor_app` below) that
checks the v3 signature and its timestamp window and stores the raw body with one asyncpg
INSERT — served by uvicorn exactly as `hubsync serve` serves hubsync (the same HTTP protocol
class, connection limit and event loop, one process). hubsync is the real `hubsync serve`
(worker and scheduler off) on a fresh, migrated PostgreSQL database with half the companies
linked (bench/webhook_intake.py's setup, reused). Both run all along; the load goes to one at
a time, alternately, `--rounds` times, so that both see the same machine in the same minutes.
`--also LABEL=PATH` adds a hubsync served from another checkout (the code before a change)
to the same rounds; the order of the servers is rotated every round.

The load client is wrk (one process, `--threads` threads, `--connections` connections,
`--seconds` per round). wrk's Lua has no HMAC, so every request of a round — distinct events,
each signed with a fresh timestamp (hubsync refuses one older than 5 minutes) — is built in
Python just before the round into a file that the Lua script (`WRK_SCRIPT`) cycles through;
enough are built that none is sent twice (a repeat would be a cheap duplicate for hubsync),
and the script reports any repeat. Modes: `single` (1-event deliveries: deliveries/s) and
`batch` (100-event deliveries: events/s).

    .venv/bin/python -m bench.intake_floor [--rounds 3] [--seconds 10] [--modes single,batch]
        [--also before=/path/to/checkout]

Needs wrk on PATH (Debian's `wrk` package). PostgreSQL: HUBSYNC_BENCH_POSTGRES_URL (default
postgresql+asyncpg://root@127.0.0.1:5432/postgres); a database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.webhook_intake import (
    DEFAULT_ADMIN_URL,
    PATH,
    ROOT,
    SECRET,
    bench_database,
    delivery,
    free_port,
    libpq,
    load_average,
    machine,
    prepare,
    process_cpu_seconds,
    raw_request,
    start_server,
    wait_ready,
)

FLOOR_TABLE = "floor_deliveries"
V3_WINDOW_MS = 5 * 60 * 1000
# What a round may need at most, per second of load: more than either server can take, so
# that no request is sent twice.
MAX_RATE = {"single": 6000, "batch": 250}
EVENTS = {"single": 1, "batch": 100}

WRK_SCRIPT = r"""
-- Cycles through pre-built raw HTTP requests (each record: 10-digit length, then the bytes);
-- thread k of n takes records k, k+n, ... Reports one RESULT line, parsed by intake_floor.py.
local threads = {}
local count = 0
function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end
function init(args)
  local n = tonumber(os.getenv("INTAKE_THREADS"))
  local file = assert(io.open(os.getenv("INTAKE_REQUESTS"), "rb"))
  local data = file:read("*a")
  file:close()
  requests, sent = {}, 0
  local pos, i = 1, 0
  while pos <= #data do
    local len = tonumber(data:sub(pos, pos + 9))
    pos = pos + 10
    if i % n == id then requests[#requests + 1] = data:sub(pos, pos + len - 1) end
    pos, i = pos + len, i + 1
  end
end
function request()
  sent = sent + 1
  return requests[(sent - 1) % #requests + 1]
end
function done(summary, latency, requests)
  local repeated = 0
  for _, thread in ipairs(threads) do
    repeated = repeated + math.max(0, thread:get("sent") - #thread:get("requests"))
  end
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50),
    latency:percentile(99), repeated))
end
"""


# --- the floor -------------------------------------------------------------------------------


def floor_app(dsn: str, secret: bytes) -> Starlette:
    """v3 signature and timestamp window, then one INSERT of the raw body; nothing more."""
    import asyncpg  # noqa: PLC0415 - only the floor's own process needs it

    pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        settings = {"application_name": FLOOR_TABLE}  # its backends' CPU is told apart
        async with asyncpg.create_pool(
            dsn, min_size=10, max_size=10, server_settings=settings
        ) as pool:
            yield

    async def receive(request: Request) -> JSONResponse:
        signature = request.headers.get("x-hubspot-signature-v3", "")
        timestamp = request.headers.get("x-hubspot-request-timestamp", "")
        if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > V3_WINDOW_MS:
            return JSONResponse({"error": "stale or missing timestamp"}, status_code=401)
        body = await request.body()
        uri = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        message = request.method.encode() + uri.encode() + body + timestamp.encode()
        expected = base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature.encode()):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        assert pool is not None
        await pool.execute(f"INSERT INTO {FLOOR_TABLE} (body) VALUES ($1)", body.decode())
        return JSONResponse({"stored": 1})

    async def ready(_request: Request) -> JSONResponse:
        return JSONResponse({"ready": pool is not None})

    routes = [Route(PATH, receive, methods=["POST"]), Route("/readyz", ready, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)


def serve_floor(port: int) -> None:
    """The floor in this process, served as `hubsync serve` serves hubsync (app/cli/serve.py):
    uvicorn's default loop, hubsync's HTTP protocol class and connection limit."""
    import uvicorn  # noqa: PLC0415

    from app.http_server import server_options  # noqa: PLC0415
    from app.settings import Settings  # noqa: PLC0415

    settings = Settings.from_env()
    dsn = libpq(settings.database_url.reveal())
    app = floor_app(dsn, SECRET.encode())
    options = server_options(settings)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, proxy_headers=True, **options)


def start_floor(url: str, port: int) -> subprocess.Popen[bytes]:
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        connection.execute(
            f"CREATE TABLE {FLOOR_TABLE} (id bigserial PRIMARY KEY, body text NOT NULL, "
            "received_at timestamptz NOT NULL DEFAULT now())"
        )
    env = {**os.environ, "HUBSYNC_DATABASE_URL": url, "HUBSPOT_CLIENT_SECRET": SECRET}
    command = [sys.executable, "-m", "bench.intake_floor", "--serve-floor", str(port)]
    return subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603 - our own command


# --- the load --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    repeated: int
    server_cpu_seconds: float
    database_cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def write_requests(path: Path, base: str, count: int, size: int) -> None:
    """`count` distinct signed deliveries of `size` events, timestamped now."""
    with path.open("wb") as out:
        for _ in range(count):
            request = raw_request(base, delivery(size))
            out.write(b"%010d" % len(request))
            out.write(request)


def run_wrk(base: str, requests: Path, script: Path, args: argparse.Namespace) -> Round:
    command = ["wrk", "-t", str(args.threads), "-c", str(args.connections)]
    command += ["-d", f"{round(args.seconds)}s", "--timeout", "5s", "-s", str(script), base + PATH]
    env = {**os.environ, "INTAKE_REQUESTS": str(requests), "INTAKE_THREADS": str(args.threads)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)  # noqa: S603
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    count, micros, status, sockets, p50, p99, repeated = (int(x) for x in line.split()[1:])
    return Round(count, micros / 1e6, status, sockets, p50 / 1000, p99 / 1000, repeated, 0.0, 0.0)


def backend_pids(url: str, floor: bool) -> list[int]:
    """The PostgreSQL backends serving the floor's pool, or hubsync's (same machine)."""
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND (application_name = %s) = %s",
            (FLOOR_TABLE, floor),
        ).fetchall()
    return [pid for (pid,) in rows]


@dataclass(frozen=True)
class Target:
    base: str
    pid: int
    url: str
    floor: bool


def measure(
    target: Target, mode: str, args: argparse.Namespace, scratch: Path, seconds: float
) -> Round:
    requests = scratch / "requests.bin"
    count = int(MAX_RATE[mode] * seconds)
    write_requests(requests, target.base, count, EVENTS[mode])
    backends = backend_pids(target.url, target.floor)  # pools are warm: the same ones all along
    cpu_before = process_cpu_seconds(target.pid)
    database_before = sum(process_cpu_seconds(pid) for pid in backends)
    load = argparse.Namespace(**{**vars(args), "seconds": seconds})
    result = run_wrk(target.base, requests, scratch / "intake.lua", load)
    cpu = process_cpu_seconds(target.pid) - cpu_before
    database = sum(process_cpu_seconds(pid) for pid in backends) - database_before
    return dataclasses.replace(result, server_cpu_seconds=cpu, database_cpu_seconds=database)


def describe(result: Round, size: int) -> str:
    per_delivery = result.server_cpu_seconds / max(result.requests, 1) * 1000
    database = result.database_cpu_seconds / max(result.requests, 1) * 1000
    return (
        f"{result.per_second:,.0f} deliveries/s ({result.per_second * size:,.0f} events/s), "
        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
        f"CPU/delivery: server {per_delivery:.2f} ms, PostgreSQL {database:.2f} ms; "
        f"non-2xx {result.status_errors}, "
        f"socket errors {result.socket_errors}, repeated {result.repeated}"
    )


def median_of(rounds: list[Round]) -> Round:
    return sorted(rounds, key=lambda r: r.per_second)[len(rounds) // 2]


def compare(servers: dict[str, Target], args: argparse.Namespace, scratch: Path) -> None:
    for mode in args.modes:
        size = EVENTS[mode]
        print(
            f"\n== {mode}: {size}-event deliveries, {args.rounds} rounds of {args.seconds:g} s "
            "each =="
        )
        for target in servers.values():  # warm up: pools, prepared statements, caches
            measure(target, mode, args, scratch, seconds=min(args.seconds, 3))
        results: dict[str, list[Round]] = {name: [] for name in servers}
        for number in range(1, args.rounds + 1):
            # Rotated every round, so each server follows each other one in turn.
            names = list(servers)
            shift = (number - 1) % len(names)
            order = names[shift:] + names[:shift]
            for name in order:
                result = measure(servers[name], mode, args, scratch, args.seconds)
                results[name].append(result)
                print(
                    f"round {number} {name:7}: {describe(result, size)}  [load {load_average()}]",
                    flush=True,
                )
        for name, rounds in results.items():
            median = median_of(rounds)
            rates = ", ".join(f"{r.per_second:,.0f}" for r in rounds)
            print(
                f"median {name:7}: {median.per_second:,.0f} deliveries/s "
                f"({median.per_second * size:,.0f} events/s), p50 "
                f"{statistics.median(r.p50_ms for r in rounds):.1f} ms, p99 "
                f"{statistics.median(r.p99_ms for r in rounds):.1f} ms [rounds: {rates}]"
            )
        floor = median_of(results["floor"]).per_second
        for name in servers:
            if name != "floor":
                ratio = median_of(results[name]).per_second / floor
                print(f"ratio {name}/floor ({mode}): {ratio:.2f}", flush=True)


def git_commit(root: Path) -> str:
    done = subprocess.run(  # noqa: S603 - a fixed command
        ["git", "-C", str(root), "log", "-1", "--format=%h %s"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()[:80] or "unknown commit"


@contextmanager
def running(command: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield command
    finally:
        command.terminate()
        command.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="of load per round")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--modes", default="single,batch", help="single, batch or both")
    parser.add_argument(
        "--hubsync-root",
        type=Path,
        default=ROOT,
        help="the checkout whose hubsync is measured (e.g. a `git worktree` of the code before "
        "a change); the floor and this script are always this checkout's",
    )
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="one more hubsync, from the checkout PATH, measured in the same rounds under LABEL "
        "(e.g. before=/tmp/main for the code before a change); repeatable",
    )
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor is not None:
        serve_floor(args.serve_floor)
        return 0
    args.also = [item.split("=", 1) for item in args.also]
    if any(len(pair) != 2 or pair[0] in ("floor", "hubsync") for pair in args.also):
        parser.error("--also takes LABEL=PATH, with a label other than floor or hubsync")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := set(args.modes) - set(EVENTS):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    if shutil.which("wrk") is None:
        print("intake_floor: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    admin_url = os.environ.get("HUBSYNC_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
    invocation = [Path(sys.executable).name, "-m", "bench.intake_floor", *sys.argv[1:]]
    print(f"machine: {machine()}")
    print(f"command: {shlex.join(invocation)}")
    print(
        f"load: wrk, {args.threads} threads, {args.connections} connections, {args.seconds:g} s "
        "per round, every request a distinct signed delivery; the servers one at a time, in turn "
        "(the order rotated every round); PostgreSQL on this machine"
    )
    print(f"load average before: {load_average()}", flush=True)
    with bench_database(admin_url) as url, tempfile.TemporaryDirectory() as scratch:
        asyncio.run(prepare(url))
        (Path(scratch) / "intake.lua").write_text(WRK_SCRIPT)
        roots = {"hubsync": args.hubsync_root.resolve()}
        roots.update((label, Path(path).resolve()) for label, path in args.also)
        floor_port = free_port()
        with contextlib.ExitStack() as stack:
            floor = stack.enter_context(running(start_floor(url, floor_port)))
            servers = {"floor": Target(f"http://127.0.0.1:{floor_port}", floor.pid, url, True)}
            processes = [floor]
            print("floor:   python -m bench.intake_floor --serve-floor PORT (floor_app)")
            for label, root in roots.items():
                port = free_port()
                # Its stdout is the demo's banner (throwaway credentials): not worth printing.
                process, command = start_server(url, port, output=subprocess.DEVNULL, root=root)
                stack.enter_context(running(process))
                processes.append(process)
                servers[label] = Target(f"http://127.0.0.1:{port}", process.pid, url, False)
                print(
                    f"{label}: {shlex.join(['python', *command[1:]])} (worker and scheduler "
                    f"off), code of {root} at {git_commit(root)}"
                )
            for target, process in zip(servers.values(), processes, strict=True):
                asyncio.run(wait_ready(target.base, process))
            compare(servers, args, Path(scratch))
    print(f"load average after:  {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
