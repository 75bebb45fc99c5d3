"""Benchmark: what one statement's round trip to PostgreSQL costs in CPU, on both sides.

A sync batch is a few dozen statements; each is a round trip that hubsync's event loop,
asyncpg and the kernel pay for on one side, and a PostgreSQL backend on the other, whatever
the statement does. This measures that fixed part alone: `SELECT $1::int` sent `--count`
times through `app.sql.fetch_postgres` (the batch's own path, on an autocommit connection),
`--runs` times; the CPU of this process and of every PostgreSQL process over each run, per
statement. Multiply by the statements a change saves to know what it can save at most.

    .venv/bin/python -m bench.round_trip [--count 3000] [--runs 5]

PostgreSQL: HUBSYNC_BENCH_POSTGRES_URL (default postgresql+asyncpg://root@127.0.0.1:5432/
postgres); nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from app.sql import fetch_postgres
from app.store.db import create_engine, each_statement_committed
from bench.outbound import machine, postgres_cpu

URL = os.environ.get(
    "HUBSYNC_BENCH_POSTGRES_URL", "postgresql+asyncpg://root@127.0.0.1:5432/postgres"
)


async def measure(count: int, runs: int) -> list[tuple[float, float]]:
    """(hubsync µs, PostgreSQL µs) per statement, one pair per run."""
    engine = create_engine(URL, pool_size=1)
    results = []
    try:
        async with each_statement_committed(engine) as connection:
            await fetch_postgres(connection, "SELECT $1::int", 0)  # prepared once
            for _ in range(runs):
                started, database_started = time.process_time(), postgres_cpu()
                for i in range(count):
                    await fetch_postgres(connection, "SELECT $1::int", i)
                database = postgres_cpu()
                if database is None or database_started is None:
                    raise SystemExit("PostgreSQL's processes are not readable here (/proc)")
                results.append(
                    (
                        (time.process_time() - started) / count * 1e6,
                        (database - database_started) / count * 1e6,
                    )
                )
    finally:
        await engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"command: python -m bench.round_trip --count {args.count} --runs {args.runs}")
    results = asyncio.run(measure(args.count, args.runs))
    ours, theirs = [r[0] for r in results], [r[1] for r in results]
    print("hubsync µs a statement:    " + ", ".join(f"{v:.0f}" for v in ours))
    print("PostgreSQL µs a statement: " + ", ".join(f"{v:.0f}" for v in theirs))
    print(
        f"median of {args.runs}: hubsync {statistics.median(ours):.0f} µs, "
        f"PostgreSQL {statistics.median(theirs):.0f} µs a round trip"
    )


if __name__ == "__main__":
    main()
