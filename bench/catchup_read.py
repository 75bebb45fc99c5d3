"""Benchmark: the catch-up's read of WARP's changed rows, as WARP's table grows.

Every catch-up pass (`HUBSYNC_CATCHUP_INTERVAL`, 5 minutes by default) reads the customers
changed since the last pass: `SqlWarpConnector.iter_updated_since`. WARP's table need not
have an index on `updated_at` (the schema hubsync is given has none), and none is made here.
This seeds `--customers` rows (COPY, as `bench.outbound` does), stamps `--changed` of them
as changed now, and has each tree's code read them, in a child process with that tree on its
path: the rows read, the statements sent, the read's wall time and what PostgreSQL's
processes spent meanwhile. Medians of `--runs`; the trees take turns each run.

    .venv/bin/python -m bench.catchup_read [--customers 1000000] [--changed 100000]
        [--runs 3] [--also before=/path/to/checkout]

PostgreSQL: HUBSYNC_TEST_POSTGRES_URL (as bench.outbound); one database, created and dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import psycopg

from bench.outbound import database, libpq, machine, prepare_warp, trees

# The child: the tree's own connector reads what changed since `since`, counting statements
# (and the tree's own `bench.outbound.postgres_cpu`, the same in every tree since 2026-12-07).
CHILD = """
import asyncio, json, sys, time
from datetime import datetime
from sqlalchemy import event
from app.store.db import create_engine
from app.warp.connector import SqlWarpConnector
from bench.outbound import postgres_cpu

async def main():
    engine = create_engine(sys.argv[1])
    statements = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda *args: statements.append(1))
    warp = SqlWarpConnector(engine, "accounts.customers")
    since = datetime.fromisoformat(sys.argv[2])
    rows, cpu, start = 0, postgres_cpu(), time.perf_counter()
    async for customers in warp.iter_updated_since(since):
        rows += len(customers)
    took = time.perf_counter() - start
    print(json.dumps({"rows": rows, "statements": len(statements), "seconds": took,
                      "postgres_cpu": postgres_cpu() - cpu}))
    await engine.dispose()

asyncio.run(main())
"""


def read_as(root: Path, name: str, since: str) -> dict[str, float]:
    done = subprocess.run(  # noqa: S603 -- this Python, a fixed script
        [sys.executable, "-c", CHILD,
         libpq(name).replace("postgresql://", "postgresql+asyncpg://", 1), since],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=PATH")
    args = parser.parse_args()
    if not 0 < args.changed <= args.customers:
        parser.error("--changed must be between 1 and --customers")
    roots = trees(parser, args.also)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print(
        f"WARP: {args.customers:,} customers, no index on updated_at, {args.changed:,} changed"
        f" since the pass's start; median of {args.runs} runs, the trees in turn"
    )
    found: dict[str, list[dict[str, float]]] = {label: [] for label in roots}
    with database() as name:
        prepare_warp(name, args.customers)
        with psycopg.connect(libpq(name), autocommit=True) as conn:
            since = conn.execute("SELECT now()").fetchone()[0].isoformat()  # type: ignore[index]
            conn.execute(
                "UPDATE accounts.customers SET current_balance = current_balance + 1,"
                " updated_at = now() WHERE id IN"
                " (SELECT id FROM accounts.customers ORDER BY ban LIMIT %s)",
                (args.changed,),
            )
            conn.execute("VACUUM ANALYZE accounts.customers")
        for run in range(1, args.runs + 1):
            for label, root in roots.items():
                result = read_as(root, name, since)
                if result["rows"] != args.changed:
                    raise SystemExit(f"{label} read {result['rows']} rows, not {args.changed}")
                found[label].append(result)
                print(
                    f"run {run} {label}: {result['rows']:,.0f} rows in {result['seconds']:.2f} s,"
                    f" {result['statements']:.0f} statements, PostgreSQL CPU"
                    f" {result['postgres_cpu']:.2f} s"
                )
    print()
    print("| tree | read, s | PostgreSQL CPU, s | statements |")
    print("|---|---|---|---|")
    for label, results in found.items():
        seconds = statistics.median(r["seconds"] for r in results)
        cpu = statistics.median(r["postgres_cpu"] for r in results)
        sent = statistics.median(r["statements"] for r in results)
        print(f"| {label} | {seconds:.2f} | {cpu:.2f} | {sent:.0f} |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
