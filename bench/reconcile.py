"""The full reconciliation at size: N WARP customers x N HubSpot companies, 1 % drift.

Real processes on loopback: `hubsync sandbox` as HubSpot (100 requests / 10 s, answering
with the latency model `hubspot-2026` unless `--latency-model none`) and hubsync on
a fresh PostgreSQL database. Set-up: N customers in `accounts.customers` (bench.outbound's
rows), N companies seeded in the sandbox with the values hubsync would have written, a link
for each pair (the state after a complete sync), then 1 % drift seeded in known fields: half
changed in HubSpot (warp_status, warp_credit_limit or name), half straight in WARP's table
(status or credit_limit).

Phases:
- dry run (`hubsync reconcile --dry-run`, its own process, the whole limit available after an
  empty window), RUNS times: wall time from process start to exit, the process's peak RSS
  (its VmHWM), and the report checked against the seeded drift: every drift found exactly once
  in its field, nothing else reported (no false positive).
- live latency during a run capped at 50 %: `hubsync serve` with
  HUBSYNC_RECONCILE_RATE_SHARE=50%, a dry run started through the API, and meanwhile 10 queue
  POSTs/s; latency = the sync log's record of that job minus the POST (an upper bound of the
  HubSpot write, which precedes the record).

Usage: python -m bench.reconcile [--customers 100000] [--runs 3] [--latency-seconds 60]
           [--latency-model hubspot-2026]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import psycopg

from app.hubspot.client import HubSpotClient
from app.hubspot.properties import ensure_properties
from app.hubspot.ratelimit import LocalRateLimiter
from app.sandbox.bulk_seed import parse_template
from app.settings import RateLimit, Secret
from app.sync.core.mapping import hubspot_properties, read_warp_values
from app.sync.core.rules import DEFAULT_RULES
from bench.outbound import (
    DEFAULT_LATENCY_MODEL,
    HUBSPOT_TOKEN,
    LIMIT,
    ROOT,
    TOKEN,
    WINDOW_SECONDS,
    clean_env,
    database,
    free_port,
    libpq,
    machine,
    percentile,
    prepare,
    process,
    sandbox_stats,
)

HUBSPOT_DRIFT = ("warp_status", "warp_credit_limit", "name")
WARP_DRIFT = ("status", "credit_limit")
FIELD_OF = {"warp_status": "status", "warp_credit_limit": "credit_limit", "name": "company_name"}
# The companies a complete sync leaves for bench.outbound's rows, customer n's from these
# templates (the sandbox's bulk seed, `app.sandbox.bulk_seed`); `seed` checks them against
# the mapping itself.
COMPANY_TEMPLATE = {
    "warp_ban": "ZT-{n+700000000}",
    "name": "Bench Customer {n}",
    "warp_status": "ACTIVE",
    "warp_credit_limit": "{n+1000}",
    "warp_current_balance": "0",
    "warp_customer_type": "POSTPAID",
    "warp_services_voice": "true",
    "warp_services_messaging": "false",
    "warp_services_data": "true",
    "domain": "bench{n}.example",
}


def warp_row(name: str, n: int) -> dict[str, Any]:
    with psycopg.connect(libpq(name)) as conn:
        cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
        row = cursor.execute(
            "SELECT * FROM accounts.customers WHERE ban = %s", (f"ZT-{700000000 + n}",)
        ).fetchone()
    assert row is not None
    return dict(row)


def company_properties(row: dict[str, Any]) -> dict[str, str]:
    """What a complete sync writes to HubSpot for this WARP row."""
    values = read_warp_values(DEFAULT_RULES, row)
    by_property = {rule.hubspot_property: values[rule.warp_field] for rule in DEFAULT_RULES}
    return {k: v for k, v in hubspot_properties(DEFAULT_RULES, by_property).items() if v}


def rendered(n: int) -> dict[str, str]:
    """Company n's properties as the sandbox's bulk seed makes them from the templates."""
    made = {name: parse_template(template) for name, template in COMPANY_TEMPLATE.items()}
    return {name: maker(n) if callable(maker) else maker for name, maker in made.items()}


async def seed(
    sandbox: str, name: str, ids: list[str], rng: random.Random, drift: float
) -> dict[str, str]:
    """Companies as a complete sync leaves them (one bulk seed in the sandbox), links (COPY),
    then the drift; returns the seeded drift as {customer id: WARP field}."""
    total = len(ids)
    for n in {0, total - 1}:
        assert company_properties(warp_row(name, n)) == rendered(n), "template out of date"
    limiter = LocalRateLimiter(RateLimit.parse(LIMIT))
    token = Secret(HUBSPOT_TOKEN)
    async with HubSpotClient(base_url=sandbox, access_token=token, limiter=limiter) as client:
        await ensure_properties(client)
    drifted = rng.sample(range(total), int(total * drift))
    in_hubspot = set(drifted[: len(drifted) // 2])
    expected: dict[str, str] = {}
    overrides: dict[str, dict[str, str]] = {}
    for n in sorted(in_hubspot):
        prop = HUBSPOT_DRIFT[n % len(HUBSPOT_DRIFT)]
        overrides[str(n)] = {prop: {"warp_status": "SUSPENDED", "warp_credit_limit": "1",
                                    "name": f"Renamed {n}"}[prop]}  # fmt: skip
        expected[ids[n]] = FIELD_OF[prop]
    spec = {"count": total, "properties": COMPANY_TEMPLATE, "overrides": overrides}
    async with httpx.AsyncClient(base_url=sandbox, timeout=600) as http:
        answer = await http.post("/_sandbox/seed", json=spec)
        answer.raise_for_status()
        first = int(answer.json()["first"])
    now = datetime.now(UTC)
    warp_changes: dict[str, list[str]] = {field: [] for field in WARP_DRIFT}
    for n in drifted:
        if n not in in_hubspot:
            field = WARP_DRIFT[n % len(WARP_DRIFT)]
            warp_changes[field].append(ids[n])
            expected[ids[n]] = field
    with psycopg.connect(libpq(name)) as conn:
        with conn.cursor().copy(
            "COPY hubspot_entity_links (warp_customer_id, hubspot_company_id, warp_ban, state,"
            " last_synced_at, created_at, updated_at) FROM STDIN"
        ) as copy:
            for n, customer_id in enumerate(ids):
                copy.write_row(
                    (customer_id, str(first + n), f"ZT-{700000000 + n}", "active", now, now, now)
                )
        for field, value in (("status", "SUSPENDED"), ("credit_limit", Decimal(3))):
            conn.execute(
                f"UPDATE accounts.customers SET {field} = %s, updated_at = now()"
                " WHERE id = ANY(%s::uuid[])",
                (value, warp_changes[field]),
            )
        conn.execute("ANALYZE")
    return expected


def cli_env(name: str, sandbox: str, **extra: str) -> dict[str, str]:
    return {
        **clean_env(),
        "HUBSYNC_DATABASE_URL": libpq(name),
        "HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN,
        "HUBSPOT_CLIENT_SECRET": "bench-client-secret",  # /readyz wants one beside a token
        "HUBSPOT_BASE_URL": sandbox,
        "HUBSPOT_RATE_LIMIT": LIMIT,
        "HUBSYNC_LOG_LEVEL": "WARNING",
        **extra,
    }


@dataclass
class DryRun:
    run_id: int
    seconds: float
    peak_mb: float
    cpu_seconds: float  # the hubsync process's user + system CPU time


def dry_run(name: str, sandbox: str) -> DryRun:
    """One dry run in a process of its own. Its peak RSS is the process's own high-water
    mark (`VmHWM`, read every 0.2 s until it exits): `wait4`'s `ru_maxrss` would count the
    moment between fork and exec, when the child still shares this (large) benchmark
    process's pages. Its CPU time is read the same way (the last reading before it exits)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "reconcile", "--dry-run"],
        env=cli_env(name, sandbox, HUBSYNC_RECONCILE_RATE_SHARE="100%"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    peak_kb, cpu = 0, 0.0
    while proc.poll() is None:
        try:
            peak_kb = max(peak_kb, int(status_field(proc.pid, "VmHWM")))
            cpu = cpu_seconds(proc.pid)
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"hubsync reconcile failed ({proc.returncode}):\n{output}")
    run_id = int(output.split("reconciliation run ", 1)[1].split(" ", 1)[0])
    return DryRun(run_id, elapsed, peak_kb / 1024, cpu)


def status_field(pid: int, key: str) -> str:
    """A field of /proc/PID/status, without its unit (kB for the memory fields)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name == key:
                return value.split()[0]
    raise ValueError(f"no {key} in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> str:
    """A process's resident memory now and its peak (VmRSS, VmHWM)."""
    rss, peak = (int(status_field(pid, key)) / 1024 for key in ("VmRSS", "VmHWM"))
    return f"RSS {rss:.0f} MB (peak {peak:.0f} MB)"


def check(name: str, run_id: int, expected: dict[str, str], total: int) -> str:
    """Every seeded drift found once, in its field; nothing else reported."""
    with psycopg.connect(libpq(name)) as conn:
        items = conn.execute(
            "SELECT category, warp_customer_id, fields FROM hubspot_reconciliation_items"
            " WHERE run_id = %s",
            (run_id,),
        ).fetchall()
        counts = conn.execute(
            "SELECT counts FROM hubspot_reconciliation_runs WHERE id = %s", (run_id,)
        ).fetchone()[0]
    drift = [(customer, fields) for category, customer, fields in items if category == "drift"]
    others = [item for item in items if item[0] != "drift"]
    found = {customer for customer, _ in drift}
    wrong_field = [c for c, fields in drift if expected.get(c) not in {f["field"] for f in fields}]
    missed = set(expected) - found
    false_positive = found - set(expected)
    ok = (
        len(drift) == len(found) == len(expected)
        and not missed
        and not false_positive
        and not others
        and not wrong_field
        and counts.get("in_sync") == total - len(expected)
    )
    return (
        f"{'OK' if ok else 'WRONG'}: {len(found)}/{len(expected)} drifts found, "
        f"{len(drift) - len(found)} twice, {len(missed)} missed, {len(false_positive)} false "
        f"positive(s), {len(wrong_field)} in the wrong field, {len(others)} other item(s); "
        f"counts {counts}"
    )


async def drive_live_jobs(
    client: httpx.AsyncClient, name: str, chosen: list[str]
) -> dict[str, float]:
    """10 queue POSTs/s, each after a balance change in WARP: {customer: POST time}."""
    sent: dict[str, float] = {}
    start = time.monotonic()
    with psycopg.connect(libpq(name), autocommit=True) as conn:
        for n, customer_id in enumerate(chosen):
            await asyncio.sleep(max(0.0, start + n / 10 - time.monotonic()))
            conn.execute(
                "UPDATE accounts.customers SET current_balance = current_balance + 7,"
                " updated_at = now() WHERE id = %s",
                (customer_id,),
            )
            sent[customer_id] = time.time()
            (await client.post(f"/v1/sync/customers/{customer_id}/queue")).raise_for_status()
    return sent


def logged_latencies(name: str, sent: dict[str, float]) -> list[float]:
    with psycopg.connect(libpq(name)) as conn:
        logged = dict(
            conn.execute(
                "SELECT warp_customer_id, min(created_at) FROM hubspot_sync_log"
                " WHERE warp_customer_id = ANY(%s) AND outcome = 'updated'"
                " GROUP BY warp_customer_id",
                (list(sent),),
            ).fetchall()
        )
    return [(logged[c].timestamp() - at) * 1000 for c, at in sent.items() if c in logged]


async def live_latency(
    name: str, sandbox: str, ids: list[str], seconds: float
) -> tuple[list[float], list[float], str]:
    """Live jobs at 10/s in `hubsync serve`: first alone (the baseline on this machine now),
    then while a dry run capped at 50 % runs in the same process."""
    port = free_port()
    hubsync = f"http://127.0.0.1:{port}"
    env = cli_env(
        name,
        sandbox,
        HUBSYNC_API_TOKENS=TOKEN,
        HUBSYNC_RECONCILE_RATE_SHARE="50%",
        HUBSYNC_RECONCILE_CRON="",
        HUBSYNC_CATCHUP_INTERVAL="0",
    )
    serve = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    count = int(seconds * 10)
    alone, during = ids[-2 * count : -count], ids[-count:]
    with process(serve, env, f"{hubsync}/readyz"):
        async with httpx.AsyncClient(base_url=hubsync, headers=headers, timeout=30) as client:
            await asyncio.sleep(WINDOW_SECONDS + 0.5)
            (await client.post(f"{sandbox}/_sandbox/stats/peaks/reset")).raise_for_status()
            baseline = await drive_live_jobs(client, name, alone)
            alone_peak = (await client.get(f"{sandbox}/_sandbox/stats")).json()
            await asyncio.sleep(WINDOW_SECONDS + 0.5)
            (await client.post(f"{sandbox}/_sandbox/stats/peaks/reset")).raise_for_status()
            run = (await client.post("/v1/reconciliation/runs", json={"mode": "dry_run"})).json()
            run_started = time.monotonic()
            await asyncio.sleep(3)  # the run is under way
            sent = await drive_live_jobs(client, name, during)
            state = run
            while state["state"] == "running":
                await asyncio.sleep(1)
                state = (await client.get(f"/v1/reconciliation/runs/{run['id']}")).json()
            run_seconds = time.monotonic() - run_started
            peaks = (await client.get(f"{sandbox}/_sandbox/stats")).json()
    latencies = logged_latencies(name, sent)
    note = (
        f"capped run {run['id']}: {state['state']} in {run_seconds:.0f} s, "
        f"{state['hubspot_calls']} HubSpot calls; {len(latencies)}/{len(sent)} live jobs logged; "
        f"live jobs alone used at most {alone_peak['max_requests_in_window']} requests in any "
        "10 s; "
        f"during it, most requests in any 10 s {peaks['max_requests_in_window']} and most "
        f"searches in any 1 s {peaks['max_searches_in_window']} (the run's cap at 50 %: "
        f"{peaks['rate_limit']['requests'] // 2} and "
        f"{max(1, peaks['search_rate_limit']['requests'] // 2)}; live syncs do not search)"
    )
    return logged_latencies(name, baseline), latencies, note


def dry_runs(
    name: str,
    sandbox: str,
    sandbox_pid: int,
    runs: int,
    *,
    expected: dict[str, str],
    ids: list[str],
) -> tuple[list[float], list[float]]:
    """`runs` dry runs, each printed and checked: their seconds and peak RSS (MB)."""
    times, peaks = [], []
    for run in range(runs):
        time.sleep(WINDOW_SECONDS + 0.5)  # the whole limit available
        before, sandbox_cpu = sandbox_stats(sandbox), cpu_seconds(sandbox_pid)
        done = dry_run(name, sandbox)
        after, sandbox_cpu = sandbox_stats(sandbox), cpu_seconds(sandbox_pid) - sandbox_cpu
        times.append(done.seconds)
        peaks.append(done.peak_mb)
        judged = len(ids)
        print(
            f"dry run {run + 1} (run {done.run_id}): {done.seconds:.1f} s, peak RSS "
            f"{done.peak_mb:.0f} MB, CPU {done.cpu_seconds:.0f} s "
            f"({done.cpu_seconds / judged * 1e6:.0f} us per pair; the sandbox "
            f"{sandbox_cpu:.0f} s), {after['requests'] - before['requests']} HubSpot requests "
            f"({after['searches'] - before['searches']} searches), "
            f"{after['writes'] - before['writes']} writes, "
            f"{after['rate_limited'] - before['rate_limited']} 429s, load "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; sandbox "
            f"{memory(sandbox_pid)} — {check(name, done.run_id, expected, len(ids))}"
        )
    return times, peaks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--drift", type=float, default=0.01, help="share of pairs drifted")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=60.0, help="0: no live phase")
    parser.add_argument("--latency-model", default=DEFAULT_LATENCY_MODEL, help="or 'none'")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()}")
    print(
        f"command: python -m bench.reconcile --customers {args.customers} --drift {args.drift}"
        f" --runs {args.runs} --latency-seconds {args.latency_seconds:g}"
        f" --latency-model {args.latency_model}"
    )
    rng = random.Random(9)
    with database() as name:
        t0 = time.monotonic()
        ids = prepare(name, args.customers)
        print(f"set-up: {len(ids)} WARP customers (COPY) in {time.monotonic() - t0:.0f} s")
        sandbox_port = free_port()
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        sandbox_cmd = [sys.executable, "-m", "app.cli", "sandbox", "--port", str(sandbox_port)]
        sandbox_cmd += ["--rate-limit", LIMIT]
        if args.latency_model != "none":
            sandbox_cmd += ["--latency-model", args.latency_model]
        with process(sandbox_cmd, clean_env(), f"{sandbox}/_sandbox/stats") as sandbox_proc:
            t0 = time.monotonic()
            expected = asyncio.run(seed(sandbox, name, ids, rng, args.drift))
            print(f"set-up: {len(ids)} companies (the sandbox's bulk seed) and links (COPY), "
                  f"{len(expected)} drifts seeded in {time.monotonic() - t0:.0f} s; sandbox "
                  f"{memory(sandbox_proc.pid)}")  # fmt: skip
            times, peaks = dry_runs(
                name, sandbox, sandbox_proc.pid, args.runs, expected=expected, ids=ids
            )
            baseline: list[float] = []
            latencies: list[float] = []
            note = "live phase skipped (--latency-seconds 0)"
            if args.latency_seconds > 0:
                baseline, latencies, note = asyncio.run(
                    live_latency(name, sandbox, ids, args.latency_seconds)
                )
            stats = sandbox_stats(sandbox)
            sandbox_memory = memory(sandbox_proc.pid)
    print()
    print("| measure | median | runs | target |")
    print("|---|---|---|---|")
    target = "<= 720" if args.customers >= 1_000_000 else "<= 120"
    print(f"| dry run, s | {statistics.median(times):.1f} | "
          f"{', '.join(f'{t:.1f}' for t in times)} | {target} |")  # fmt: skip
    print(f"| peak RSS of the hubsync process, MB | {statistics.median(peaks):.0f} | "
          f"{', '.join(f'{p:.0f}' for p in peaks)} | <= 256 |")  # fmt: skip
    if baseline:
        print(f"| live queue -> HubSpot, no run (baseline now), p50 ms | "
              f"{percentile(baseline, 0.5):.0f} | {len(baseline)} jobs | |")  # fmt: skip
        print(f"| live queue -> HubSpot, no run (baseline now), p99 ms | "
              f"{percentile(baseline, 0.99):.0f} | | |")  # fmt: skip
    if latencies:
        print(f"| live queue -> HubSpot during a 50 % run, p50 ms | "
              f"{percentile(latencies, 0.5):.0f} | {len(latencies)} jobs | |")  # fmt: skip
        print(f"| live queue -> HubSpot during a 50 % run, p99 ms | "
              f"{percentile(latencies, 0.99):.0f} | | <= 1000 |")  # fmt: skip
    print(note)
    print(f"sandbox process at the end: {sandbox_memory}; load average {os.getloadavg()}")
    print(
        f"sandbox over everything: max requests in any 10 s window "
        f"{stats['max_requests_in_window']} (limit {stats['rate_limit']['requests']}), max "
        f"searches in any {stats['search_rate_limit']['window_seconds']:g} s "
        f"{stats['max_searches_in_window']} (limit {stats['search_rate_limit']['requests']}), "
        f"429s served {stats['rate_limited']}"
        + (f" {stats['rate_limited_by_policy']}" if stats["rate_limited"] else "")
    )


if __name__ == "__main__":
    main()
