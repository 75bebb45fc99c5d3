"""What the change capture trigger costs WARP: UPDATE throughput on the customers table with
and without `hubsync capture install`'s trigger (issue 23: ≤ 10 % target).

    .venv/bin/python -m bench.capture_cost [--customers 100000] [--seconds 20] [--clients 4]
        [--runs 5]
    .venv/bin/python -m bench.capture_cost --mixed [--variants none,notify,no-notify]
        [--against DIR] [--customers 100000] [--seconds 10] [--clients 4] [--runs 8]

**--mixed** (the fairest on a shared machine): one copy of the customers table per variant
in one database, each with its own capture installed by `Capture.install()` (as `hubsync
capture install` does; then moved to a schema of its own, `capture_<variant>`, its
function's references to `hubsync_capture.` rewritten to it). One pgbench whose every
transaction updates one customer of a table picked at random, so every variant runs under
the same load at the same moment; `pgbench -r` gives each table's mean UPDATE latency (the
statement and its commit). A run's cost of a variant is 1 - latency(none) / latency(variant),
the throughput it costs; printed: each run, then per variant the median latency and the
median cost with min..max. Variants: `none` (no trigger), `notify`, `no-notify` (this tree's
install with and without NOTIFY), and with `--against DIR` (an older tree, e.g. `git worktree
add DIR main`) `against-notify` and `against-no-notify`, its `app/warp/capture.py` installing.
Put one notifying variant in a run: NOTIFY serialises the commits of every notifier, so two
notifying variants slow each other down (a WARP has one capture). Before each run the change
tables are emptied and every table vacuumed.

Without --mixed, rounds of separate runs:

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
import importlib.util
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
from types import ModuleType

import psycopg

from app.store.db import create_engine
from app.warp import capture as this_capture
from app.warp.capture import CAPTURE_SCHEMA, Capture
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


# --mixed ------------------------------------------------------------------------------------

MIXED_VARIANTS = {
    "none": "without trigger",
    "notify": "trigger + NOTIFY",
    "no-notify": "trigger, no NOTIFY",
    "against-notify": "--against's trigger + NOTIFY",
    "against-no-notify": "--against's trigger, no NOTIFY",
}


def capture_module(tree: str) -> ModuleType:
    """`app/warp/capture.py` of another tree (its install as that tree ships it)."""
    spec = importlib.util.spec_from_file_location(
        "against_capture", Path(tree) / "app" / "warp" / "capture.py"
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"no app/warp/capture.py in {tree}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def mixed_table(variant: str) -> str:
    return f"customers_{variant.replace('-', '_')}"


def mixed_schema(variant: str) -> str:
    return f"capture_{variant.replace('-', '_')}"


async def install_moved(name: str, variant: str, module: ModuleType) -> None:
    """Install the variant's capture on its table as `hubsync capture install` does, then move
    it to a schema of its own so that the next variant's install starts afresh."""
    engine = create_engine(sqlalchemy_url(name), pool_size=1)
    try:
        capture = module.Capture(engine, f"accounts.{mixed_table(variant)}")
        await capture.install(notify=not variant.endswith("no-notify"))
    finally:
        await engine.dispose()
    schema = mixed_schema(variant)
    with psycopg.connect(libpq(name), autocommit=True) as conn:
        conn.execute(f"ALTER SCHEMA {CAPTURE_SCHEMA} RENAME TO {schema}")  # type: ignore[arg-type]
        row = conn.execute(
            "SELECT pg_get_functiondef(to_regproc(%s))", (f"{schema}.note_change",)
        ).fetchone()
        if row is None or not row[0]:
            raise RuntimeError(f"no function {schema}.note_change")
        moved = str(row[0]).replace(f"{CAPTURE_SCHEMA}.", f"{schema}.")
        conn.execute(moved)  # type: ignore[arg-type]


def mixed_script(variants: list[str], customers: int) -> str:
    lines = [f"\\set t random(1, {len(variants)})", f"\\set n random(1, {customers})"]
    for k, variant in enumerate(variants, start=1):
        branch = "\\if" if k == 1 else "\\elif"
        lines.append(f"{branch} :t = {k}")
        lines.append(
            f"UPDATE accounts.{mixed_table(variant)} SET company_name = 'Renamed ' || random()"
            " WHERE ban = 'ZT-' || :n;"
        )
    return "\n".join([*lines, "\\endif"]) + "\n"


def settle_mixed(name: str, variants: list[str]) -> dict[str, int]:
    """Empty the change tables (the changes each variant noted since) and vacuum."""
    noted = {}
    with psycopg.connect(libpq(name), autocommit=True) as conn:
        for variant in variants:
            if variant != "none":
                schema = mixed_schema(variant)
                noted[variant] = conn.execute(f"DELETE FROM {schema}.changes").rowcount  # type: ignore[arg-type]
                conn.execute(f"VACUUM {schema}.changes")  # type: ignore[arg-type]
            conn.execute(f"VACUUM ANALYZE accounts.{mixed_table(variant)}")  # type: ignore[arg-type]
    return noted


def pgbench_latencies(
    name: str, script: str, variants: list[str], clients: int, seconds: int
) -> tuple[float, dict[str, float]]:
    """One pgbench -r run: the tps in all and each variant's mean UPDATE latency (ms)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as file:
        file.write(script)
    try:
        done = subprocess.run(  # noqa: S603 -- the server's own client, fixed arguments
            [
                shutil.which("pgbench") or "pgbench",
                *("-n", "-r", "-c", str(clients), "-j", str(clients), "-T", str(seconds)),
                *("-f", file.name, libpq(name)),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        Path(file.name).unlink()
    latencies = {}
    for variant in variants:
        # "  0.617  0  UPDATE accounts.…" (PostgreSQL 15: latency, failures, statement)
        found = re.search(
            rf"^\s+([\d.]+)\s+(?:\d+\s+)?UPDATE accounts\.{mixed_table(variant)} ",
            done.stdout,
            re.MULTILINE,
        )
        if found is None:
            raise RuntimeError(f"pgbench -r gave no latency for {variant}:\n{done.stdout}")
        latencies[variant] = float(found.group(1))
    tps = re.search(r"tps = ([\d.]+)", done.stdout)
    return float(tps.group(1)) if tps else float("nan"), latencies


def mixed_main(args: argparse.Namespace) -> None:
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in MIXED_VARIANTS]
    if unknown or variants[0] != "none":
        raise SystemExit(f"--variants: 'none' first, then some of {list(MIXED_VARIANTS)}")
    if any(v.startswith("against") for v in variants) and not args.against:
        raise SystemExit("the against-* variants need --against DIR")
    against = capture_module(args.against) if args.against else None
    print(f"command: {' '.join(_invocation())}")
    print(f"machine: {machine()}; server {ADMIN_URL.rsplit('@', 1)[-1]}")
    if args.against:
        print(f"--against: {Path(args.against).resolve()}")
    print(f"load average at the start: {_load()}", flush=True)
    latencies: dict[str, list[float]] = {v: [] for v in variants}
    with database() as name:
        with psycopg.connect(libpq(name), autocommit=True) as conn:
            conn.execute(TABLE)
            conn.execute(FILL, (args.customers,))  # type: ignore[arg-type]
            for variant in variants:
                table = f"accounts.{mixed_table(variant)}"
                conn.execute(f"CREATE TABLE {table} (LIKE accounts.customers INCLUDING ALL)")  # type: ignore[arg-type]
                conn.execute(f"INSERT INTO {table} SELECT * FROM accounts.customers")  # type: ignore[arg-type]
            conn.execute("DROP TABLE accounts.customers")
        for variant in variants[1:]:
            module = against if variant.startswith("against") and against else this_capture
            asyncio.run(install_moved(name, variant, module))
        script = mixed_script(variants, args.customers)
        settle_mixed(name, variants)
        for run in range(args.runs):
            tps, found = pgbench_latencies(name, script, variants, args.clients, args.seconds)
            noted = settle_mixed(name, variants)
            if not all(noted.values()):  # a capture that notes nothing measures nothing
                raise RuntimeError(f"changes noted per variant: {noted}")
            for variant in variants:
                latencies[variant].append(found[variant])
            print(
                f"run {run + 1} ({time.strftime('%H:%M:%S')}, load {_load()}, {tps:.0f} tps in"
                " all): " + "; ".join(f"{v} {found[v]:.3f} ms" for v in variants),
                flush=True,
            )
    print(
        f"{args.customers} customers per table; pgbench -r, {args.clients} clients,"
        f" {args.seconds} s per run, each transaction one UPDATE of a table picked at random;"
        f" {args.runs} runs"
    )
    print(f"load average at the end: {_load()}")
    print("| variant | UPDATE latency, ms (median) | cost: median (min..max) |")
    print("|---|---|---|")
    for variant in variants:
        costs = [
            1 - base / own for base, own in zip(latencies["none"], latencies[variant], strict=True)
        ]
        cost = (
            f"{statistics.median(costs):.1%} ({min(costs):.1%}..{max(costs):.1%})"
            if variant != "none"
            else "-"
        )
        print(
            f"| {MIXED_VARIANTS[variant]} | {statistics.median(latencies[variant]):.3f} | {cost} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, help="per measurement (20; --mixed: per run, 10)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--runs", type=int, help="rounds of all variants (5; --mixed: runs, 8)")
    parser.add_argument("--mixed", action="store_true", help="every variant in one pgbench run")
    parser.add_argument("--variants", default="none,notify,no-notify", help="--mixed only")
    parser.add_argument("--against", metavar="DIR", help="--mixed: an older tree to measure")
    args = parser.parse_args()
    if args.mixed:
        args.seconds, args.runs = args.seconds or 10, args.runs or 8
        mixed_main(args)
        return
    args.seconds, args.runs = args.seconds or 20, args.runs or 5
    tps = pgbench_tps if shutil.which("pgbench") else loop_tps
    print(f"command: {' '.join(_invocation())}")
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


def _invocation() -> list[str]:
    return [Path(sys.executable).name, "-m", "bench.capture_cost", *sys.argv[1:]]


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
