"""Outbound throughput and latency: hubsync against the HubSpot sandbox at HubSpot's limit.

Everything runs as real processes on loopback: the sandbox (`hubsync sandbox`, 100 requests /
10 s), hubsync (`hubsync serve`, pointed at the sandbox as if it were HubSpot, on a fresh
PostgreSQL database with N customers). The benchmark drives hubsync through its API and reads
the outcome from the database and from the sandbox's own counters.

Phases, each repeated RUNS times (medians reported). They run back to back, so each starts
with HubSpot's 10-second window already full: no phase is flattered by an idle window's burst.
- warp-only: every customer's balance changes (a WARP-owned field) and all N are queued;
  ceiling 1,000 companies/s (one batch update per 100, no read needed).
- two-way: every customer's name changes (a two-way field: HubSpot must be read first);
  ceiling 500 companies/s.
- naive: the old way, one PATCH per customer, same limit, over a fixed 30 s (three windows)
  from an empty window; ceiling 10 companies/s.
- latency: 10 jobs/s for a while; time from the queue POST to HubSpot's write of that company.

The sandbox answers with a latency model (app/sandbox/latency.py), by default "hubspot-2026"
(batch writes mean 400 ms, p99 1.2 s; batch reads mean 250 ms, p99 0.8 s): a sandbox that
answers in a few milliseconds flatters every figure. `--latency-model none` turns it off.

Usage: python -m bench.outbound [--customers 20000] [--runs 3] [--latency-seconds 30]
           [--latency-model hubspot-2026] [--serve-workers 1] [--skip naive,latency]
           [--only-latency] [--hubsync-root PATH] [--catchup-interval SECONDS]

`--only-latency`: after the set-up, only the latency phase, `--runs` times on fresh customers
(each after an empty window), with where each run's latency went (POST -> queued -> HubSpot's
write -> the outcome recorded) and the medians of the runs' p50 and p99.

`--catchup-interval`: hubsync's HUBSYNC_CATCHUP_INTERVAL (default its own, 5 minutes). The
scheduled catch-up reads back what every phase changed; a short interval makes each phase pay
for a pass or more instead of whichever one the five minutes land in.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.hubspot.ratelimit import LocalRateLimiter
from app.settings import RateLimit

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("HUBSYNC_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")
TOKEN = "bench-token"  # noqa: S105 -- a throwaway token for a local benchmark
LIMIT = "100/10s"  # HubSpot's limit for the sandbox and hubsync alike (--rate-limit)
WINDOW_SECONDS = 10.0
DEFAULT_LATENCY_MODEL = "hubspot-2026"
HUBSPOT_TOKEN = "pat-bench-not-a-secret"  # noqa: S105 - the sandbox takes any token
PHASES = ("naive", "latency")  # the optional phases (--skip); the sync phases always run


SERVE_PIDS: dict[str, int] = {}  # hubsync's base URL -> the `hubsync serve` process id
SANDBOX_PIDS: dict[
    str, int
] = {}  # hubsync's base URL -> its sandbox's process id (HubSpot, on this machine)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and every process below it (uvicorn's
    workers with `--workers N`), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def postgres_cpu() -> float | None:
    """CPU seconds used so far by this machine's PostgreSQL server (every `postgres` process,
    and the backends that have ended, counted in the postmaster's children's time); None when
    the server is not on this machine. Every database counts: in a benchmark, ours is the
    only one busy."""
    tick = os.sysconf("SC_CLK_TCK")
    total, found = 0.0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        found = True
        total += sum(int(f) for f in fields[11:15]) / tick
    return total if found else None


def trees(parser: argparse.ArgumentParser, also: list[str]) -> dict[str, Path]:
    """This checkout and each `--also LABEL=PATH`, by label: the trees a benchmark compares."""
    roots = {"this tree": ROOT}
    for item in also:
        label, _, path = item.partition("=")
        if not path:
            parser.error("--also takes LABEL=PATH")
        roots[label] = Path(path).resolve()
    return roots


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def libpq(database: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{database}"


@contextmanager
def database() -> Iterator[str]:
    name = f"hubsync_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def prepare(name: str, customers: int) -> list[str]:
    """Migrate hubsync's schema and create WARP's table with `customers` rows."""
    env = {**os.environ, "HUBSYNC_DATABASE_URL": libpq(name)}
    subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env, check=True, cwd=ROOT)
    return prepare_warp(name, customers)


def prepare_warp(name: str, customers: int) -> list[str]:
    """WARP's table (`accounts.customers`, no index but its keys) with `customers` rows."""
    ids = [str(uuid.uuid4()) for _ in range(customers)]
    with psycopg.connect(libpq(name)) as conn:
        conn.execute(
            """CREATE SCHEMA accounts;
            CREATE TABLE accounts.customers (
              id uuid PRIMARY KEY, ban text UNIQUE NOT NULL, company_name text,
              customer_type text, status text, credit_limit numeric, current_balance numeric,
              contact jsonb, services jsonb, external_ids jsonb,
              created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now())"""
        )
        with conn.cursor().copy(
            "COPY accounts.customers (id, ban, company_name, customer_type, status, credit_limit,"
            " current_balance, contact, services, external_ids) FROM STDIN"
        ) as copy:
            for n, customer_id in enumerate(ids):
                copy.write_row(
                    (
                        customer_id,
                        f"ZT-{700000000 + n}",
                        f"Bench Customer {n}",
                        "POSTPAID",
                        "ACTIVE",
                        Decimal(1000 + n),
                        Decimal("0"),
                        f'{{"email": "billing@bench{n}.example"}}',
                        '{"voice": {"enabled": true}, "messaging": {"enabled": false},'
                        ' "data": {"enabled": true}}',
                        "{}",
                    )
                )
    return ids


@contextmanager
def process(
    args: list[str], env: dict[str, str], ready_url: str, code: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    # The log goes to a file (BENCH_LOG_DIR, default the temporary directory): an unread
    # pipe would block the process once it filled.
    log_dir = Path(os.environ.get("BENCH_LOG_DIR", tempfile.gettempdir()))
    log_path = log_dir / f"hubsync-bench-{args[3]}-{os.getpid()}-{uuid.uuid4().hex[:6]}.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(  # noqa: S603
        args, env=env, cwd=code, stdout=subprocess.DEVNULL, stderr=log_file
    )
    try:
        deadline = time.monotonic() + 30
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(ready_url, timeout=1)
                if answer.status_code < 500:
                    break
                last = f"{answer.status_code} {answer.text[:300]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.2)
        else:
            raise RuntimeError(
                f"{args} did not become ready (last answer: {last}); its log: {log_path}"
            )
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()


def analyze(name: str) -> None:
    """Fresh planner statistics: the setup grew every table from nothing in a minute, faster
    than autovacuum re-analyses, and stale estimates turn index lookups into scans. The
    measured phases are meant to show a service in its steady state."""
    with psycopg.connect(libpq(name), autocommit=True) as conn:
        conn.execute("ANALYZE")


def queue_counts(name: str) -> dict[str, int]:
    with psycopg.connect(libpq(name)) as conn:
        rows = conn.execute(
            "SELECT state, count(*) FROM hubspot_sync_queue GROUP BY state"
        ).fetchall()
    return dict(rows)


def catchup_jobs(name: str) -> int:
    """Jobs the catch-up queued so far (its own source): during a phase, work beyond the
    phase's own jobs (a change it found that the phase's jobs did not cover)."""
    with psycopg.connect(libpq(name)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM hubspot_sync_queue WHERE source = 'reconciliation'"
        ).fetchone()
    return int(row[0]) if row is not None else 0


def wait_idle(name: str, timeout: float, fastest: float | None = None, burst: int = 0) -> float:
    """Seconds until no job is pending or running.

    One connection, and a count the claim index answers from the pending and running rows
    alone: a new connection and a count over the whole (growing) queue every 50 ms took a
    good share of the CPU the measured service needed. `fastest` (jobs a second no run can
    beat: twice HubSpot's ceiling) spaces the counts while many jobs are left (a count over
    100,000 pending rows is milliseconds of the database's CPU, 20 times a second), and
    never by more than half the least time the rest can take, `burst` of them (an empty
    window's worth) taken as done at once: the end is still seen within 50 ms."""
    start = time.monotonic()
    with psycopg.connect(libpq(name), autocommit=True) as conn:
        while time.monotonic() - start < timeout:
            row = conn.execute(
                "SELECT count(*) FROM hubspot_sync_queue WHERE state IN ('pending', 'running')"
            ).fetchone()
            left = 0 if row is None else int(row[0])
            if row is not None and left == 0:
                return time.monotonic() - start
            soonest_end = max(0, left - burst) / fastest if fastest else 0.0
            time.sleep(min(1.0, max(0.05, soonest_end / 2)))
    raise TimeoutError(f"queue not idle after {timeout:.0f} s: {queue_counts(name)}")


def enqueue_all(hubsync: str, ids: list[str]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for start in range(0, len(ids), 10_000):
        response = httpx.post(
            f"{hubsync}/v1/sync/customers/queue",
            json={"customer_ids": ids[start : start + 10_000]},
            headers=headers,
            timeout=60,
        )
        response.raise_for_status()


def touch(name: str, column: str) -> None:
    """Change one field of every customer, as WARP would."""
    stamp = datetime.now(UTC).isoformat()
    with psycopg.connect(libpq(name)) as conn:
        if column == "current_balance":
            conn.execute(
                "UPDATE accounts.customers SET current_balance = current_balance + 1,"
                " updated_at = now()"
            )
        else:
            conn.execute(
                "UPDATE accounts.customers SET company_name = split_part(company_name, ' @', 1)"
                " || ' @' || %s, updated_at = now()",
                (stamp,),
            )


def sessions(name: str) -> int:
    """Connections opened to database `name` so far (PostgreSQL's own count, all clients)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        row = admin.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    return int(row[0]) if row else 0


def sandbox_stats(sandbox: str) -> dict[str, Any]:
    return dict(httpx.get(f"{sandbox}/_sandbox/stats", timeout=5).json())


async def naive_baseline(sandbox: str, name: str, seconds: float, limit: str) -> float:
    """One PATCH per customer, paced to the same limit, from an empty window: companies per
    second over `seconds` (a whole number of windows, so the first window's burst is simply
    one window's worth of the limit)."""
    limiter = LocalRateLimiter(RateLimit.parse(limit))
    with psycopg.connect(libpq(name)) as conn:
        rows = conn.execute(
            "SELECT external_ids->>'hubspot_company_id', current_balance FROM accounts.customers"
        ).fetchall()
    done = 0
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}
    async with httpx.AsyncClient(base_url=sandbox, headers=headers, timeout=30) as client:
        for company_id, balance in rows:
            grant = await limiter.acquire()
            if time.monotonic() >= deadline:
                break
            response = await client.patch(
                f"/crm/v3/objects/companies/{company_id}",
                json={"properties": {"warp_current_balance": str(balance + 1000)}},
            )
            await limiter.settle(grant)
            if response.status_code == 200:
                done += 1
            elif response.status_code != 429:  # a refusal is the benchmark's bug, not a figure
                raise RuntimeError(f"naive PATCH refused: {response.status_code} {response.text}")
    return done / seconds


async def latency(
    hubsync: str, sandbox: str, name: str, ids: list[str], seconds: float, *, offset: int = 0
) -> list[float]:
    """POST /queue at 10 jobs/s; latency = HubSpot's write time of that company - POST time.
    `offset`: where in `ids` the phase's customers start (repeated phases take fresh ones)."""
    rate = 10.0
    chosen = ids[offset : offset + int(seconds * rate)]
    with psycopg.connect(libpq(name)) as conn:
        companies = dict(
            conn.execute(
                "SELECT id::text, external_ids->>'hubspot_company_id' FROM accounts.customers"
                " WHERE id = ANY(%s::uuid[])",
                (chosen,),
            ).fetchall()
        )
    sent: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx.AsyncClient(base_url=hubsync, timeout=10, headers=headers) as client,
        await psycopg.AsyncConnection.connect(libpq(name), autocommit=True) as conn,
    ):
        start = time.monotonic()
        for n, customer_id in enumerate(chosen):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            await conn.execute(
                "UPDATE accounts.customers SET current_balance = current_balance + 7,"
                " updated_at = now() WHERE id = %s",
                (customer_id,),
            )
            sent[customer_id] = time.time()
            response = await client.post(f"/v1/sync/customers/{customer_id}/queue")
            response.raise_for_status()
        await asyncio.to_thread(wait_idle, name, 60)
        dump = (await client.get(f"{sandbox}/_sandbox/companies", timeout=30)).json()
    written: dict[str, float] = {}
    for company in dump["results"]:
        # Each chosen company is written once in this phase: its updatedAt is that write.
        written[str(company["id"])] = datetime.fromisoformat(company["updatedAt"]).timestamp()
    print_breakdown(name, sent, {cid: written.get(companies.get(cid, "")) for cid in chosen})
    return [
        (written[companies[cid]] - sent[cid]) * 1000
        for cid in chosen
        if companies.get(cid) in written
    ]


def print_breakdown(name: str, sent: dict[str, float], written: dict[str, float | None]) -> None:
    """Where a job's latency went, medians and p99s over the phase: POST -> queued (the API's
    insert), queued -> HubSpot's write (the worker's wake and gathering, the engine's reads,
    the rate limiter, HubSpot's modelled answer), HubSpot's write -> the outcome recorded."""
    with psycopg.connect(libpq(name)) as conn:
        rows = conn.execute(
            "SELECT DISTINCT ON (entity_key) entity_key, extract(epoch FROM created_at),"
            " extract(epoch FROM finished_at) FROM hubspot_sync_queue"
            " WHERE entity_key = ANY(%s) ORDER BY entity_key, id DESC",
            (list(sent),),
        ).fetchall()
    steps: dict[str, list[float]] = {"queued": [], "written": [], "recorded": []}
    for customer_id, queued, finished in rows:
        write = written.get(customer_id)
        if write is None or finished is None:
            continue
        steps["queued"].append((float(queued) - sent[customer_id]) * 1000)
        steps["written"].append((write - float(queued)) * 1000)
        steps["recorded"].append((float(finished) - write) * 1000)
    if steps["written"]:
        print(
            "latency breakdown: "
            + ", ".join(
                f"-> {step} p50 {percentile(v, 0.5):.0f} / p99 {percentile(v, 0.99):.0f} ms"
                for step, v in steps.items()
            )
        )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def clean_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("HUBSYNC_", "HUBSPOT_", "WARP_"))
    }


@contextmanager
def services(
    name: str,
    latency_model: str | None = DEFAULT_LATENCY_MODEL,
    serve_workers: int = 1,
    limit: str = LIMIT,
    code: Path = ROOT,
    **hubsync_env: str,
) -> Iterator[tuple[str, str]]:
    """The sandbox (as HubSpot, at LIMIT, answering with `latency_model`) and `hubsync serve`
    (the code of the tree `code`) on database `name`; yields their base URLs."""
    sandbox_port, hubsync_port = free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    hubsync = f"http://127.0.0.1:{hubsync_port}"
    sandbox_cmd = [sys.executable, "-m", "app.cli", "sandbox", "--port", str(sandbox_port)]
    sandbox_cmd += ["--rate-limit", limit]
    if latency_model:
        sandbox_cmd += ["--latency-model", latency_model]
    env = {
        **clean_env(),
        "HUBSYNC_DATABASE_URL": libpq(name),
        "HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN,
        "HUBSPOT_CLIENT_SECRET": "bench-client-secret",  # /readyz wants one beside a token
        "HUBSPOT_BASE_URL": sandbox,
        "HUBSPOT_RATE_LIMIT": limit,
        "HUBSYNC_API_TOKENS": TOKEN,
        "HUBSYNC_LOG_LEVEL": "WARNING",
        **hubsync_env,
    }
    serve_cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(hubsync_port)]
    serve_cmd += ["--workers", str(serve_workers)]
    with (
        process(sandbox_cmd, clean_env(), f"{sandbox}/_sandbox/stats") as sandboxed,
        process(serve_cmd, {**env, "PYTHONPATH": str(code)}, f"{hubsync}/readyz", code) as served,
    ):
        SERVE_PIDS[hubsync] = served.pid
        SANDBOX_PIDS[hubsync] = sandboxed.pid
        yield sandbox, hubsync


def refused(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The requests the ten-second limit counts, the searches beside them (the catch-up's:
    search has its own 5/s), and the 429s."""
    searches = after["searches"] - before["searches"]
    requests = after["requests"] - before["requests"] - searches
    return (
        f"{requests} HubSpot requests and {searches} searches, "
        f"{after['rate_limited'] - before['rate_limited']} 429s"
    )


def ceilings(limit: str) -> dict[str, float]:
    """Companies/s HubSpot's limit allows: one batch write of 100 per warp-only batch, one
    batch read and one batch write per two-way batch."""
    parsed = RateLimit.parse(limit)
    per_second = parsed.requests / parsed.window_seconds
    return {"warp-only": per_second * 100, "two-way": per_second * 50}


def sandbox_clock(sandbox: str) -> float:
    """The sandbox's monotonic clock now (its request log's times are on it)."""
    answer = httpx.get(f"{sandbox}/_sandbox/requests", params={"since": "inf"}, timeout=5)
    return float(answer.json()["now"])


def pacing(sandbox: str, start: float, limit: str) -> str:
    """How the phase's requests filled HubSpot's window, from the sandbox's own log (its
    clock): when the first came after the phase began and the last answer before it ended,
    HubSpot's time on each (arrival -> answer), and, once the window was full, how long after
    a place left the window (10 s after the request that held it arrived) the next request
    arrived to take it: HubSpot's time plus everything on hubsync's side (grant -> send, the
    answer -> counted, the margin, waking up)."""
    parsed = RateLimit.parse(limit)
    answer = httpx.get(f"{sandbox}/_sandbox/requests", timeout=30).json()
    end = float(answer["now"])
    every = [r for r in answer["requests"] if not r["search"]]
    arrivals = [float(r["at"]) for r in every]
    phase = [r for r in every if float(r["at"]) > start]
    if not phase:
        return "pacing: no requests in the phase"
    first = next(i for i, at in enumerate(arrivals) if at > start)
    # Both requests of a pair in the phase: the phase before ended with a pause (the queue
    # drained, the next changes made and queued), which is not the window's reuse.
    lags = [
        arrivals[i] - arrivals[i - parsed.requests] - parsed.window_seconds
        for i in range(first + parsed.requests, len(arrivals))
    ]
    served = [float(r["answered"]) - float(r["at"]) for r in phase if r["answered"] is not None]
    answered = [float(r["answered"]) for r in phase if r["answered"] is not None]
    return (
        f"pacing (the sandbox's log): {len(phase)} requests, the first "
        f"{float(phase[0]['at']) - start:.2f} s after the phase began, the last answer "
        f"{end - max(answered, default=end):.2f} s before it ended; HubSpot's time a request "
        f"median {statistics.median(served) * 1000:.0f} ms, mean "
        f"{statistics.fmean(served) * 1000:.0f} ms; a place in the window taken again "
        + (
            f"median {statistics.median(lags) * 1000:.0f} ms, mean "
            f"{statistics.fmean(lags) * 1000:.0f} ms after it left ({len(lags)} places)"
            if lags
            else "(the phase sent no more than the window holds)"
        )
    )


def measure_sync(
    sandbox: str, hubsync: str, name: str, ids: list[str], runs: int, *, limit: str
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Companies/s per phase and run, and hubsync's CPU per batch of 100 (ms: the CPU time of
    the serve process and its children over the phase, over companies / 100); the phases run
    back to back (no idle window)."""
    results: dict[str, list[float]] = {"warp-only": [], "two-way": []}
    cpu: dict[str, list[float]] = {"warp-only": [], "two-way": []}
    pid = SERVE_PIDS[hubsync]
    for run in range(runs):
        for phase, column in (("warp-only", "current_balance"), ("two-way", "company_name")):
            touch(name, column)
            before = sandbox_stats(sandbox)
            caught_up_before = catchup_jobs(name)
            sessions_before = sessions(name)
            cpu_before = process_tree_cpu(pid)
            sandbox_before = process_tree_cpu(SANDBOX_PIDS[hubsync])
            pg_before = postgres_cpu()
            sandbox_t0 = sandbox_clock(sandbox)
            t0 = time.monotonic()
            enqueue_all(hubsync, ids)
            enqueue_cpu = (process_tree_cpu(pid) - cpu_before) * 1000 / (len(ids) / 100)
            fastest, burst = 2 * ceilings(limit)["warp-only"], RateLimit.parse(limit).requests * 100
            elapsed = (time.monotonic() - t0) + wait_idle(name, 3600, fastest, burst)
            per_batch = (process_tree_cpu(pid) - cpu_before) * 1000 / (len(ids) / 100)
            pg_after = postgres_cpu()
            sandbox_cpu = (process_tree_cpu(SANDBOX_PIDS[hubsync]) - sandbox_before) * 1000
            pg = (
                ""
                if pg_before is None or pg_after is None
                else f", PostgreSQL CPU {(pg_after - pg_before) * 1000 / (len(ids) / 100):.1f} ms"
            )
            pg += f", the sandbox's CPU {sandbox_cpu / (len(ids) / 100):.1f} ms"
            opened = sessions(name) - sessions_before - 1  # wait_idle's own connection
            caught_up = catchup_jobs(name) - caught_up_before
            results[phase].append(len(ids) / elapsed)
            cpu[phase].append(per_batch)
            print(
                f"run {run + 1} {phase}: {len(ids) / elapsed:.0f} companies/s ({elapsed:.1f} s, "
                f"{refused(before, sandbox_stats(sandbox))}), "
                f"hubsync CPU {per_batch:.1f} ms per batch of 100 (the queue POST's share "
                f"{enqueue_cpu:.1f}){pg}, "
                f"{opened} database connections opened, {caught_up} catch-up jobs"
            )
            print(f"  {pacing(sandbox, sandbox_t0, limit)}")
    return results, cpu


def measure_naive(sandbox: str, name: str, runs: int, seconds: float, limit: str) -> list[float]:
    naive = []
    for run in range(runs):
        # Let HubSpot's window empty first: each phase counts only its own requests.
        time.sleep(RateLimit.parse(limit).window_seconds + 0.5)
        before = sandbox_stats(sandbox)
        naive.append(asyncio.run(naive_baseline(sandbox, name, seconds, limit)))
        print(
            f"run {run + 1} naive: {naive[-1]:.1f} companies/s "
            f"({refused(before, sandbox_stats(sandbox))})"
        )
    return naive


def measure_latency_only(
    sandbox: str, hubsync: str, name: str, ids: list[str], args: argparse.Namespace
) -> list[list[float]]:
    """The latency phase `args.runs` times, each on customers of its own after an empty
    window; prints each run's p50 / p99 and their medians, returns each run's latencies."""
    per_run = int(args.latency_seconds * 10)
    if per_run * args.runs > len(ids):
        raise SystemExit(f"--only-latency needs {per_run * args.runs} customers")
    p50s: list[float] = []
    p99s: list[float] = []
    runs: list[list[float]] = []
    for run in range(args.runs):
        time.sleep(RateLimit.parse(args.rate_limit).window_seconds + 0.5)
        before = sandbox_stats(sandbox)
        lat = asyncio.run(
            latency(hubsync, sandbox, name, ids, args.latency_seconds, offset=run * per_run)
        )
        runs.append(lat)
        p50s.append(percentile(lat, 0.5))
        p99s.append(percentile(lat, 0.99))
        print(
            f"run {run + 1} latency: p50 {p50s[-1]:.0f} ms, p99 {p99s[-1]:.0f} ms, "
            f"{refused(before, sandbox_stats(sandbox))}, load {os.getloadavg()[0]:.1f}"
        )
    print(
        f"latency over {args.runs} runs: median p50 {statistics.median(p50s):.0f} ms "
        f"({', '.join(f'{v:.0f}' for v in p50s)}), median p99 {statistics.median(p99s):.0f} ms "
        f"({', '.join(f'{v:.0f}' for v in p99s)})"
    )
    return runs


def report(
    results: dict[str, list[float]],
    cpu: dict[str, list[float]],
    naive: list[float],
    lat: list[list[float]],
    stats: dict[str, Any],
    *,
    limit: str,
) -> None:
    print()
    print("| measure | median | runs | ceiling | share of ceiling |")
    print("|---|---|---|---|---|")
    for phase, ceiling in ceilings(limit).items() if results else ():
        median = statistics.median(results[phase])
        runs = ", ".join(f"{v:.0f}" for v in results[phase])
        print(
            f"| {phase} companies/s | {median:.0f} | {runs} | {ceiling:.0f} | "
            f"{median / ceiling:.0%} |"
        )
        print(
            f"| {phase} hubsync CPU ms per batch of 100 | {statistics.median(cpu[phase]):.1f} | "
            f"{', '.join(f'{v:.1f}' for v in cpu[phase])} | | |"
        )
    if naive:
        print(
            f"| naive one-request-per-customer companies/s | {statistics.median(naive):.1f} | "
            f"{', '.join(f'{v:.1f}' for v in naive)} | "
            f"{ceilings(limit)['warp-only'] / 100:.0f} | |"
        )
    if lat:  # each run's p50 and p99, and their medians
        for name, fraction in (("p50", 0.5), ("p99", 0.99)):
            values = [percentile(run, fraction) for run in lat]
            print(
                f"| latency queue POST -> HubSpot write, {name} ms | "
                f"{statistics.median(values):.0f} | {', '.join(f'{v:.0f}' for v in values)} "
                f"({', '.join(str(len(run)) for run in lat)} jobs) | | |"
            )
    print(
        f"sandbox over the whole run: max requests in any "
        f"{RateLimit.parse(limit).window_seconds:.0f} s window "
        f"{stats['max_requests_in_window']}, 429s served {stats['rate_limited']}"
        + (f" {stats['rate_limited_by_policy']}" if stats["rate_limited"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--serve-workers",
        type=int,
        default=1,
        help="hubsync processes (`hubsync serve --workers N`), each with its worker lanes",
    )
    parser.add_argument(
        "--rate-limit",
        default=LIMIT,
        help="HubSpot's limit, for the sandbox and hubsync together (default %(default)s; "
        "250/10s is the highest published tier)",
    )
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=None,
        help="HUBSYNC_WORKER_CONCURRENCY for hubsync (the most batches in flight a process; "
        "default: hubsync's own)",
    )
    parser.add_argument(
        "--catchup-interval",
        type=int,
        default=None,
        help="HUBSYNC_CATCHUP_INTERVAL for hubsync, in seconds (default: hubsync's own)",
    )
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--naive-seconds", type=float, default=30.0)
    parser.add_argument(
        "--latency-model",
        default=DEFAULT_LATENCY_MODEL,
        help="the sandbox's latency preset, or 'none' (default %(default)s)",
    )
    parser.add_argument(
        "--skip", default="", help=f"comma-separated optional phases to leave out: {PHASES}"
    )
    parser.add_argument(
        "--hubsync-root",
        type=Path,
        default=ROOT,
        help="run `hubsync serve` from this checkout (the commit before a change, for an A/B "
        "with this very script); the sandbox and the set-up stay this one's",
    )
    parser.add_argument(
        "--only-latency",
        action="store_true",
        help="after the set-up, only the latency phase, --runs times (fresh customers each)",
    )
    args = parser.parse_args()
    skip = {p for p in args.skip.split(",") if p}
    if skip - set(PHASES):
        parser.error(f"--skip: unknown phases {sorted(skip - set(PHASES))}")
    model = None if args.latency_model == "none" else args.latency_model
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the start")
    print(
        f"command: python -m bench.outbound --customers {args.customers} --runs {args.runs}"
        f" --latency-model {args.latency_model}"
        + (f" --serve-workers {args.serve_workers}" if args.serve_workers != 1 else "")
        + (f" --skip {args.skip}" if skip else "")
        + (f" --rate-limit {args.rate_limit}" if args.rate_limit != LIMIT else "")
        + (
            f" --worker-concurrency {args.worker_concurrency}"
            if args.worker_concurrency is not None
            else ""
        )
        + (
            f" --catchup-interval {args.catchup_interval}"
            if args.catchup_interval is not None
            else ""
        )
        + (" --only-latency" if args.only_latency else "")
        + (f" --hubsync-root {args.hubsync_root}" if args.hubsync_root != ROOT else "")
    )
    RateLimit.parse(args.rate_limit)  # a bad limit fails here, not in the sandbox
    naive: list[float] = []
    lat: list[list[float]] = []
    with database() as name:
        ids = prepare(name, args.customers)
        lanes = (
            {}
            if args.worker_concurrency is None
            else {"HUBSYNC_WORKER_CONCURRENCY": str(args.worker_concurrency)}
        )
        if args.catchup_interval is not None:
            lanes["HUBSYNC_CATCHUP_INTERVAL"] = str(args.catchup_interval)
        with services(
            name, model, args.serve_workers, args.rate_limit, args.hubsync_root, **lanes
        ) as (
            sandbox,
            hubsync,
        ):
            t0 = time.monotonic()
            sessions_before = sessions(name)
            enqueue_all(hubsync, ids)
            wait_idle(name, 3600)
            took = time.monotonic() - t0
            opened = sessions(name) - sessions_before - 1  # wait_idle's own connection
            print(
                f"setup: {args.customers} companies created in {took:.1f} s"
                f" ({args.customers / took:.0f}/s), {opened} database connections opened"
            )
            analyze(name)
            if args.only_latency:
                lat = measure_latency_only(sandbox, hubsync, name, ids, args)
                report({}, {}, [], lat, sandbox_stats(sandbox), limit=args.rate_limit)
                return
            results, cpu = measure_sync(
                sandbox, hubsync, name, ids, args.runs, limit=args.rate_limit
            )
            if "naive" not in skip:
                naive = measure_naive(sandbox, name, args.runs, args.naive_seconds, args.rate_limit)
            if "latency" not in skip:
                time.sleep(RateLimit.parse(args.rate_limit).window_seconds + 0.5)
                before = sandbox_stats(sandbox)
                lat = [asyncio.run(latency(hubsync, sandbox, name, ids, args.latency_seconds))]
                print(f"latency: {refused(before, sandbox_stats(sandbox))}")
            stats = sandbox_stats(sandbox)
    report(results, cpu, naive, lat, stats, limit=args.rate_limit)


if __name__ == "__main__":
    main()
