"""Capture latency: a SQL edit in WARP until HubSpot has it, with no job posted and no catch-up
(issue 23: p50 ≤ 600 ms with the latency model).

    .venv/bin/python -m bench.capture_latency [--customers 1000] [--runs 3] [--rate 5]
        [--seconds 30] [--latency-model hubspot-2026]

Real processes on loopback and PostgreSQL: `hubsync sandbox --latency-model hubspot-2026`
(HubSpot's 100 requests / 10 s) and `hubsync serve` (worker on, catch-up and scheduled
reconciliation off) on a fresh database holding WARP's `accounts.customers` with N customers
(bench/outbound.py's `prepare`), `hubsync capture install` run on it, and every customer
synced once by a queue POST (setup only). Each run then edits distinct customers by SQL,
`UPDATE accounts.customers SET <column> = … WHERE id = …` in its own transaction (no
`updated_at` change, no queue POST), at `--rate` per second for `--seconds`. `--column
current_balance` (the default) is a field WARP owns: HubSpot is written without being read;
`company_name` is two-way (LATEST_WINS): each job reads HubSpot before it writes. Latency is the
company's `updatedAt` in the sandbox (set when HubSpot's write is answered) minus the time the
UPDATE was sent (so it includes the UPDATE's own commit, ≤ a few ms).

Where the time goes, from the capture jobs in hubsync's queue (its `created_at` and
`finished_at`, the database's clock on the same machine): UPDATE → job enqueued (the trigger,
NOTIFY, the drain) and job enqueued → job finished (the worker's claim and the batch read and
write to HubSpot). Prints p50/p99 per run and the median of the runs; checks that every job of
the run came from the capture.

PostgreSQL: HUBSYNC_TEST_POSTGRES_URL (default postgresql://root@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

from bench.outbound import (
    DEFAULT_LATENCY_MODEL,
    ROOT,
    clean_env,
    database,
    enqueue_all,
    libpq,
    machine,
    percentile,
    prepare,
    sandbox_stats,
    services,
    wait_idle,
)

QUIET = {"HUBSYNC_CATCHUP_INTERVAL": "0", "HUBSYNC_RECONCILE_CRON": ""}


def install_capture(name: str) -> None:
    env = {**clean_env(), "HUBSYNC_DATABASE_URL": libpq(name)}
    subprocess.run(
        [sys.executable, "-m", "app.cli", "capture", "install", "--json"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def company_ids(name: str, ids: list[str]) -> dict[str, str]:
    with psycopg.connect(libpq(name)) as conn:
        rows = conn.execute(
            "SELECT id::text, external_ids->>'hubspot_company_id' FROM accounts.customers"
            " WHERE id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
    return {str(customer): str(company) for customer, company in rows if company}


EDITS = {
    # WARP owns it (WARP_WINS): HubSpot is written without being read first
    "current_balance": "UPDATE accounts.customers SET current_balance = %s WHERE id = %s",
    # two-way (LATEST_WINS): the sync reads HubSpot's value before it decides
    "company_name": "UPDATE accounts.customers SET company_name = %s WHERE id = %s",
}
PROPERTIES = {"current_balance": "warp_current_balance", "company_name": "name"}


def new_value(column: str, run: int, n: int) -> str:
    return f"{run + 1}{n:04d}.25" if column == "current_balance" else f"Captured {run}-{n}"


async def edit_all(
    name: str, chosen: list[str], rate: float, run: int, column: str
) -> dict[str, float]:
    """Edit each chosen customer once at `rate`/s; the epoch second each UPDATE was sent."""
    sent: dict[str, float] = {}
    async with await psycopg.AsyncConnection.connect(libpq(name), autocommit=True) as conn:
        start = time.monotonic()
        for n, customer_id in enumerate(chosen):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            sent[customer_id] = time.time()
            await conn.execute(EDITS[column], (new_value(column, run, n), customer_id))
    return sent


def hubspot_writes(
    sandbox: str, wanted: dict[str, str], prop: str, deadline: float
) -> dict[str, float]:
    """Each company's `updatedAt` once every one in `wanted` (company -> value) holds its
    value (or at the deadline)."""
    written: dict[str, float] = {}
    while time.monotonic() < deadline:
        dump = httpx.get(f"{sandbox}/_sandbox/companies", timeout=30).json()
        written = {
            str(c["id"]): datetime.fromisoformat(c["updatedAt"]).timestamp()
            for c in dump["results"]
            if str(c["id"]) in wanted and _same(c["properties"].get(prop), wanted[str(c["id"])])
        }
        if len(written) == len(wanted):
            break
        time.sleep(0.5)
    return written


def _same(held: object, value: str) -> bool:
    try:
        return float(str(held)) == float(value)
    except ValueError:
        return str(held) == value


def capture_jobs(
    name: str, since: float
) -> tuple[dict[str, int], dict[str, tuple[float, float | None]]]:
    """Job sources since `since`, and each capture job's (created, finished) epoch seconds."""
    with psycopg.connect(libpq(name)) as conn:
        sources = dict(
            conn.execute(
                "SELECT source, count(*) FROM hubspot_sync_queue"
                " WHERE created_at >= to_timestamp(%s) GROUP BY source",
                (since,),
            ).fetchall()
        )
        rows = conn.execute(
            "SELECT entity_key, extract(epoch FROM created_at), extract(epoch FROM finished_at)"
            " FROM hubspot_sync_queue WHERE created_at >= to_timestamp(%s) AND source = 'capture'",
            (since,),
        ).fetchall()
    times = {
        str(key): (float(created), None if finished is None else float(finished))
        for key, created, finished in rows
    }
    return {str(k): int(v) for k, v in sources.items()}, times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=5.0, help="UPDATEs per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="per run")
    parser.add_argument("--latency-model", default=DEFAULT_LATENCY_MODEL, help="or 'none'")
    parser.add_argument(
        "--column",
        choices=sorted(EDITS),
        default="current_balance",
        help="the column the UPDATEs change: current_balance (WARP owns it) or company_name "
        "(two-way, LATEST_WINS: HubSpot is read before it is written)",
    )
    args = parser.parse_args()
    per_run = int(args.rate * args.seconds)
    if per_run * args.runs > args.customers:
        parser.error("--customers must be at least rate x seconds x runs (distinct customers)")
    invocation = [Path(sys.executable).name, "-m", "bench.capture_latency", *sys.argv[1:]]
    print(f"command: {' '.join(invocation)}")
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"sandbox latency model: {args.latency_model}; {args.customers} customers synced;")
    print(
        f"{per_run} single-row UPDATEs of {args.column} per run ({args.rate:g}/s for"
        f" {args.seconds:g} s), each its own transaction"
    )
    model = None if args.latency_model == "none" else args.latency_model
    p50s, p99s, jobs50, writes50, done50 = [], [], [], [], []
    with database() as name:
        ids = prepare(name, args.customers)
        install_capture(name)
        with services(name, model, **QUIET) as (sandbox, hubsync):
            started = time.monotonic()
            enqueue_all(hubsync, ids)
            wait_idle(name, 600)
            time.sleep(1.0)
            wait_idle(name, 60)
            print(f"setup: {args.customers} synced in {time.monotonic() - started:.1f} s")
            companies = company_ids(name, ids)
            for run in range(args.runs):
                chosen = ids[run * per_run : (run + 1) * per_run]
                since, before = time.time(), sandbox_stats(sandbox)["requests"]
                sent = asyncio.run(edit_all(name, chosen, args.rate, run, args.column))
                wanted = {
                    companies[c]: new_value(args.column, run, n) for n, c in enumerate(chosen)
                }
                prop = PROPERTIES[args.column]
                written = hubspot_writes(sandbox, wanted, prop, time.monotonic() + 60)
                wait_idle(name, 60)
                latencies = [
                    (written[companies[c]] - sent[c]) * 1000
                    for c in chosen
                    if companies[c] in written
                ]
                requests = sandbox_stats(sandbox)["requests"] - before
                sources, jobs = capture_jobs(name, since)
                to_job = [(jobs[c][0] - sent[c]) * 1000 for c in chosen if c in jobs]
                to_write = [
                    (written[companies[c]] - jobs[c][0]) * 1000
                    for c in chosen
                    if c in jobs and companies[c] in written
                ]
                to_done = [
                    (done - created) * 1000 for created, done in jobs.values() if done is not None
                ]
                p50s.append(percentile(latencies, 0.5))
                p99s.append(percentile(latencies, 0.99))
                jobs50.append(percentile(to_job, 0.5))
                writes50.append(percentile(to_write, 0.5))
                done50.append(percentile(to_done, 0.5))
                print(
                    f"run {run + 1}: {len(latencies)}/{per_run} in HubSpot, UPDATE -> HubSpot"
                    f" p50 {p50s[-1]:.0f} ms, p99 {p99s[-1]:.0f} ms, max {max(latencies):.0f} ms;"
                    f" UPDATE -> job p50 {jobs50[-1]:.0f} ms, job -> HubSpot p50"
                    f" {writes50[-1]:.0f} ms, job -> done p50 {done50[-1]:.0f} ms;"
                    f" jobs by source {sources}; {requests} HubSpot requests;"
                    f" load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    print(
        f"median of {args.runs} runs: UPDATE -> HubSpot p50 {statistics.median(p50s):.0f} ms,"
        f" p99 {statistics.median(p99s):.0f} ms; UPDATE -> job p50"
        f" {statistics.median(jobs50):.0f} ms, job -> HubSpot p50"
        f" {statistics.median(writes50):.0f} ms, job -> done p50 {statistics.median(done50):.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
