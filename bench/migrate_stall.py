"""How long a migration holds writers up: the longest write stall while `hubsync migrate` runs.

A PostgreSQL database at revision 0003 (before 0004's backfill and 0006's indexes) with ROWS
rows in each large table (field state, sync log, queue, webhook events; seeded with COPY) is
kept as a template. Each run copies it, then migrates the copy to head with `hubsync migrate`
(its own process, from `--code`: the repository, or an older tree from `git archive`) while a
writer keeps writing those tables: one transaction at a time, each inserting a row in all four
and updating one existing field-state and one queue row. A write's stall is its transaction's
duration; the run's figure is the longest. Reported: the median of the runs' longest stalls
(and each run's), the migration's wall time, the writes done, the machine and load average.

Usage: python -m bench.migrate_stall [--rows 1000000] [--runs 3] [--code DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg

from bench.outbound import ADMIN_URL, ROOT, clean_env, libpq, machine

FIELDS = ("company_name", "status", "credit_limit", "current_balance", "ban")


def copy_rows(conn: psycopg.Connection, statement: str, lines: io.StringIO) -> None:
    with conn.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[arg-type]
        copy.write(lines.getvalue())


def seed(name: str, rows: int) -> None:
    """ROWS rows in each large table, written with COPY (in chunks, to bound memory)."""
    chunk = 200_000
    with psycopg.connect(libpq(name), autocommit=True) as conn:
        for start in range(0, rows, chunk):
            numbers = range(start, min(rows, start + chunk))
            state, log, queue, events = io.StringIO(), io.StringIO(), io.StringIO(), io.StringIO()
            for n in numbers:
                state.write(f"c{n // len(FIELDS):07d}\t{FIELDS[n % len(FIELDS)]}\tv{n}\n")
                log.write(f"c{n // 5:07d}\tco{n}\twebhook\tto_hubspot\tsynced\n")
                queue.write(f"customer\tq{n}\t{'done' if n % 10 else 'failed'}\n")
                events.write(f"d{n}\tcompany.propertyChange\t{n}\t{{}}\tdone\n")
            copy_rows(
                conn,
                "COPY hubspot_field_state (warp_customer_id, field, warp_value) FROM STDIN",
                state,
            )
            copy_rows(
                conn,
                "COPY hubspot_sync_log (warp_customer_id, hubspot_company_id, source, "
                "direction, outcome) FROM STDIN",
                log,
            )
            copy_rows(
                conn, "COPY hubspot_sync_queue (entity_type, entity_key, state) FROM STDIN", queue
            )
            copy_rows(
                conn,
                "COPY hubspot_webhook_events (dedup_key, subscription_type, object_id, raw, "
                "status) FROM STDIN",
                events,
            )
        conn.execute("VACUUM ANALYZE")


def migrate(name: str, code: Path, revision: str = "head") -> subprocess.CompletedProcess[str]:
    env = {**clean_env(), "HUBSYNC_DATABASE_URL": libpq(name), "PYTHONPATH": str(code)}
    return subprocess.run(  # noqa: S603 -- fixed argv
        [sys.executable, "-m", "app.cli", "migrate", "--revision", revision],
        env=env,
        cwd=code,
        capture_output=True,
        text=True,
        check=False,
    )


class Writer(threading.Thread):
    """Writes the large tables one short transaction after another until stopped."""

    def __init__(self, name: str, rows: int) -> None:
        super().__init__(daemon=True)
        self.url, self.rows = libpq(name), rows
        self.stop = threading.Event()
        self.stalls: list[tuple[float, float]] = []  # (started, seconds)
        self.error: psycopg.Error | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                n = 0
                while not self.stop.is_set():
                    key = f"w{uuid.uuid4().hex[:12]}"
                    target = n * 7919 % self.rows
                    started = time.monotonic()
                    with conn.transaction():
                        conn.execute(
                            "INSERT INTO hubspot_field_state (warp_customer_id, field) "
                            "VALUES (%s, 'status')",
                            (key,),
                        )
                        conn.execute(
                            "INSERT INTO hubspot_sync_log (warp_customer_id, source, direction,"
                            " outcome) VALUES (%s, 'webhook', 'to_hubspot', 'synced')",
                            (key,),
                        )
                        conn.execute(
                            "INSERT INTO hubspot_sync_queue (entity_type, entity_key) "
                            "VALUES ('customer', %s)",
                            (key,),
                        )
                        conn.execute(
                            "INSERT INTO hubspot_webhook_events (dedup_key, subscription_type, "
                            "raw) VALUES (%s, 'company.propertyChange', '{}')",
                            (key,),
                        )
                        conn.execute(
                            "UPDATE hubspot_field_state SET warp_value = %s "
                            "WHERE warp_customer_id = %s AND field = %s",
                            (key, f"c{target // len(FIELDS):07d}", FIELDS[target % len(FIELDS)]),
                        )
                        conn.execute(
                            "UPDATE hubspot_sync_queue SET attempts = attempts + 1 "
                            "WHERE entity_key = %s AND entity_type = 'customer'",
                            (f"q{target}",),
                        )
                    self.stalls.append((started, time.monotonic() - started))
                    n += 1
        except psycopg.Error as error:  # reported by the caller
            self.error = error


def one_run(template: str, rows: int, code: Path) -> dict[str, float]:
    name = f"hubsync_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')  # type: ignore[arg-type]
    try:
        writer = Writer(name, rows)
        writer.start()
        time.sleep(2)  # the writer's steady state first
        started = time.monotonic()
        result = migrate(name, code)
        took = time.monotonic() - started
        if result.returncode != 0:
            print(f"migration FAILED (exit {result.returncode}):\n{result.stderr[-3000:]}")
        time.sleep(1)
        writer.stop.set()
        writer.join()
        if writer.error is not None:
            raise writer.error
        during = [s for t, s in writer.stalls if started - 0.5 <= t <= started + took]
        print(result.stdout.rstrip(), flush=True)
        return {
            "longest": max(during),
            "migration": took,
            "writes": len(during),
            "median": statistics.median(during),
        }
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--code", type=Path, default=ROOT, help="the tree whose migrations run")
    args = parser.parse_args()
    code = args.code.resolve()
    template = f"hubsync_bench_tpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{template}"')  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        prepared = migrate(template, code, "0003")
        if prepared.returncode != 0:
            raise SystemExit(prepared.stderr)
        seed(template, args.rows)
        print(f"seeded {args.rows:,} rows x 4 tables in {time.monotonic() - started:.0f} s")
        runs = []
        for index in range(args.runs):
            figures = one_run(template, args.rows, code)
            runs.append(figures)
            print(
                f"run {index + 1}: longest stall {figures['longest']:.3f} s, median write "
                f"{figures['median'] * 1000:.1f} ms, {figures['writes']:.0f} writes, "
                f"migration {figures['migration']:.1f} s, load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')  # type: ignore[arg-type]
    print(f"machine: {machine()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"command: python -m bench.migrate_stall --rows {args.rows} --runs {args.runs} "
        f"--code {code}"
    )
    each = ", ".join(f"{r['longest']:.3f}" for r in runs)
    print(
        f"longest write stall, median of {len(runs)}: "
        f"{statistics.median(r['longest'] for r in runs):.3f} s "
        f"(runs: {each}); migration "
        f"{statistics.median(r['migration'] for r in runs):.1f} s"
    )


if __name__ == "__main__":
    main()
