"""What the change capture trigger costs WARP: UPDATE throughput on the customers table with
and without `hubsync capture install`'s trigger (issue 23: ≤ 10 % target).

    .venv/bin/python -m bench.capture_cost [--customers 100000] [--seconds 20] [--clients 4]
        [--runs 3]

A fresh PostgreSQL database with `accounts.customers` (WARP's contract) holding N customers.
Each round measures, in one sitting, without the trigger, with it (`Capture.install()`, as
`hubsync capture install` does) and with it installed `--no-notify` (no NOTIFY), in reversed
order every other round (A B C, C B A, …) so that a machine whose load drifts favours none:

- **single-row UPDATEs in many transactions**: `pgbench` (the server's own client, C; a
  Python loop over psycopg when pgbench is not installed), `--clients` connections for
  `--seconds`, each transaction one `UPDATE … SET company_name = …` of a random customer by
  its ban (a watched column changes, so the trigger writes a change row every time);
- **one bulk UPDATE of all N rows** in a single statement.

Before each measurement the change table is emptied (the service drains it continuously)
and the customers table vacuumed, whichever the variant. Prints the machine, the load
average before and after, the median of the rounds per variant and the median of the
rounds' own ratios (each round's variants ran minutes apart under the same load).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from app.store.db import create_engine
from app.warp.capture import Capture
from bench.outbound import ADMIN_URL, database, libpq, machine

TABLE = """CREATE SCHEMA accounts;
CREATE TABLE accounts.customers (
  id uuid PRIMARY KEY, ban text UNIQUE NOT NULL, company_name text,
  customer_type text, status text, credit_limit numeric, current_balance numeric,
  contact jsonb, services jsonb, external_ids jsonb,
  created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now())"""
FILL = """INSERT INTO accounts.customers (id, ban, company_name, customer_type, status,
  credit_limit, current_balance, contact, services, external_ids)
SELECT gen_random_uuid(), 'ZT-' || g, 'Customer ' || g, 'POSTPAID', 'ACTIVE', 1000, 0,
  jsonb_build_object('email', 'billing' || g || '@example.com'),
  '{"voice": {"enabled": true}}', '{}'
FROM generate_series(1, %s) AS g"""
SCRIPT = """\\set n random(1, {customers})
UPDATE accounts.customers SET company_name = 'Renamed ' || random() WHERE ban = 'ZT-' || :n;
"""


def sqlalchemy_url(name: str) -> str:
    return libpq(name).replace("postgresql://", "postgresql+asyncpg://", 1)


VARIANTS = ("without trigger", "trigger + NOTIFY", "trigger, --no-notify")


async def set_trigger(name: str, variant: str) -> None:
    engine = create_engine(sqlalchemy_url(name), pool_size=1)
    try:
        capture = Capture(engine, "accounts.customers")
        if variant == VARIANTS[0]:
            await capture.uninstall()
        else:
            await capture.install(notify=variant == VARIANTS[1])
    finally:
        await engine.dispose()


def settle(name: str) -> None:
    """The same start for every variant: no change rows left, no dead customer rows."""
    with psycopg.connect(libpq(name), autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('hubsync_capture.changes')").fetchone() != (None,):
            conn.execute("DELETE FROM hubsync_capture.changes")
        conn.execute("VACUUM ANALYZE accounts.customers")


def pgbench_tps(name: str, customers: int, clients: int, seconds: int) -> float:
    pgbench = shutil.which("pgbench") or "pgbench"
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(SCRIPT.format(customers=customers))
    try:
        done = subprocess.run(  # noqa: S603 -- the server's own client, fixed arguments
            [
                pgbench,
                "-n",
                "-c",
                str(clients),
                "-j",
                str(clients),
                "-T",
                str(seconds),
                "-f",
                script.name,
                libpq(name),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        Path(script.name).unlink()
    match = re.search(r"tps = ([\d.]+)", done.stdout)
    if match is None:
        raise RuntimeError(f"pgbench said nothing about tps:\n{done.stdout}\n{done.stderr}")
    return float(match.group(1))


def loop_tps(name: str, customers: int, clients: int, seconds: int) -> float:
    """pgbench's loop in Python, when pgbench is not installed."""
    counts = [0] * clients
    stop_at = time.monotonic() + seconds

    def client(slot: int) -> None:
        with psycopg.connect(libpq(name), autocommit=True) as conn:
            while time.monotonic() < stop_at:
                conn.execute(
                    "UPDATE accounts.customers SET company_name = 'Renamed ' || random() "
                    "WHERE ban = %s",
                    (f"ZT-{random.randint(1, customers)}",),
                )
                counts[slot] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def bulk_seconds(name: str) -> float:
    with psycopg.connect(libpq(name), autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("UPDATE accounts.customers SET company_name = company_name || '.'")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5, help="rounds of all variants")
    args = parser.parse_args()
    tps = pgbench_tps if shutil.which("pgbench") else loop_tps
    invocation = [Path(sys.executable).name, "-m", "bench.capture_cost", *sys.argv[1:]]
    print(f"command: {' '.join(invocation)}")
    print(f"machine: {machine()}; server {ADMIN_URL.rsplit('@', 1)[-1]}")
    print(f"load average at the start: {_load()}", flush=True)
    results: dict[tuple[str, str], list[float]] = {}
    with database() as name:
        with psycopg.connect(libpq(name), autocommit=True) as conn:
            conn.execute(TABLE)
            conn.execute(FILL, (args.customers,))  # type: ignore[arg-type]
            conn.execute("VACUUM ANALYZE accounts.customers")
        for run in range(args.runs):
            order = VARIANTS if run % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                asyncio.run(set_trigger(name, variant))
                settle(name)
                rate = tps(name, args.customers, args.clients, args.seconds)
                results.setdefault(("updates/s", variant), []).append(rate)
                settle(name)
                results.setdefault(("bulk s", variant), []).append(bulk_seconds(name))
            rates = [results[("updates/s", v)][-1] for v in VARIANTS]
            bulks = [results[("bulk s", v)][-1] for v in VARIANTS]
            print(
                f"round {run + 1} ({' -> '.join(order)}): updates/s "
                + ", ".join(f"{r:.0f}" for r in rates)
                + "; bulk s "
                + ", ".join(f"{b:.2f}" for b in bulks)
                + f"; load {_load()}",
                flush=True,
            )
    print(
        f"{args.customers} customers; single-row UPDATEs: {tps.__name__}, {args.clients}"
        f" clients, {args.seconds} s per measurement, one UPDATE per transaction; bulk: one"
        f" UPDATE of all {args.customers} rows; median of {args.runs} rounds"
    )
    print(f"load average at the end: {_load()}")
    print("| measure | " + " | ".join(VARIANTS) + " |")
    print("|---|---|---|---|")
    rates = [statistics.median(results[("updates/s", v)]) for v in VARIANTS]
    costs = [f"{rate:.0f} (cost {1 - rate / rates[0]:.1%})" for rate in rates[1:]]
    print(f"| single-row UPDATEs/s | {rates[0]:.0f} | " + " | ".join(costs) + " |")
    paired = [_paired(results, "updates/s", v, inverse=True) for v in VARIANTS[1:]]
    print("| single-row, median of the rounds' costs | - | " + " | ".join(paired) + " |")
    bulks = [statistics.median(results[("bulk s", v)]) for v in VARIANTS]
    costs = [f"{bulk:.2f} (+{bulk / bulks[0] - 1:.0%})" for bulk in bulks[1:]]
    print(f"| one UPDATE of all rows (s) | {bulks[0]:.2f} | " + " | ".join(costs) + " |")
    paired = [_paired(results, "bulk s", v, inverse=False) for v in VARIANTS[1:]]
    print("| bulk, median of the rounds' costs | - | " + " | ".join(paired) + " |")


def _load() -> str:
    return " ".join(f"{n:.1f}" for n in os.getloadavg())


def _paired(
    results: dict[tuple[str, str], list[float]], measure: str, variant: str, *, inverse: bool
) -> str:
    """The median over rounds of each round's cost against that round's run without."""
    pairs = zip(results[(measure, VARIANTS[0])], results[(measure, variant)], strict=True)
    costs = [(1 - b / a) if inverse else (b / a - 1) for a, b in pairs]
    return f"{statistics.median(costs):.1%} (rounds {min(costs):.0%}..{max(costs):.0%})"


if __name__ == "__main__":
    main()
