"""Benchmark: what closing a batch's webhook events costs the database, as webhooks back up.

Every batch of 100 jobs closes the events of its jobs, and those of the earlier jobs of the
same entities the queue folded into them (`finish_events_for_jobs`, in the batch's records).
This times that statement, exactly as the worker sends it (`_PROCESSED_POSTGRES`, through
asyncpg), against a database that grows the way a backlog does: more and more queued events
of other jobs. Each tree gets its own database, migrated by its own `hubsync migrate`, and
filled the same way:

- the queue: `--entities` companies with `--history` finished jobs each (one in 50 folded into
  a later one, `superseded`), and the batch: one running job for each of 100 of them;
- the events: one queued event for each of the batch's jobs and of their folded jobs, 200,000
  processed ones, and then `--queued` queued events of other jobs, added step by step (each
  row the size of a real property change's).

At each step the statement runs `--runs` times, each in a transaction rolled back (it is an
UPDATE); the median is printed with the pages it touched (EXPLAIN ANALYZE, BUFFERS). The
tables are analysed after each step (`--statistics fresh`), or only before the first
(`stale`: a burst of webhooks that autovacuum has not caught up with).

    .venv/bin/python -m bench.event_close [--queued 0,10000,100000] [--history 20]
        [--entities 10000] [--runs 7] [--statistics fresh|stale] [--also before=/path/to/checkout]

Each step also checks what the statement closed: the events of the batch's jobs and of their
folded jobs, none other. PostgreSQL: HUBSYNC_TEST_POSTGRES_URL (as bench.outbound; default
postgresql://root@127.0.0.1:5432/postgres); a database per tree is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.migrate_stall import migrate
from bench.outbound import database, libpq, machine, trees

BATCH = 100
BACKGROUND_PROCESSED = 200_000
RAW_EVENT = json.dumps(
    {
        "eventId": 1755227890,
        "subscriptionId": 4217051,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": 1733558400000,
        "subscriptionType": "company.propertyChange",
        "attemptNumber": 0,
        "objectId": 9876543210,
        "propertyName": "annualrevenue",
        "propertyValue": "1250000.50",
        "changeFlag": "UPDATED",
        "changeSource": "CRM_UI",
        "sourceId": "userId:7351264",
    }
)
# The statement as the tree compiled it: its SQL, its parameters' names, the values it binds.
STATEMENT_OF_TREE = (
    "import json; from app.store.webhook_events import _PROCESSED_POSTGRES as s; "
    "print(json.dumps({'sql': s.sql, 'names': list(s.names), 'bound': s.bound}, default=str))"
)


def statement_of(root: Path) -> dict[str, Any]:
    found = subprocess.run(  # noqa: S603 -- this Python, a fixed script
        [sys.executable, "-c", STATEMENT_OF_TREE], cwd=root, check=True, capture_output=True
    )
    statement: dict[str, Any] = json.loads(found.stdout)
    return statement


async def fill(conn: asyncpg.Connection, entities: int, history: int) -> list[int]:
    """The queue's history and the batch's running jobs (their ids), and the events every
    step shares."""
    await conn.execute(
        "INSERT INTO hubspot_sync_queue (entity_type, entity_key, state, finished_at,"
        " last_error_kind) SELECT 'company', 'e' || (g % $1), 'done', now(),"
        " CASE WHEN g % 50 = 0 THEN 'superseded' END FROM generate_series(1, $2) g",
        entities,
        entities * history,
    )
    rows = await conn.fetch(
        "INSERT INTO hubspot_sync_queue (entity_type, entity_key, state, locked_by, claim)"
        " SELECT 'company', 'e' || g, 'running', 'w/0', 1 FROM generate_series(0, $1 - 1) g"
        " RETURNING id",
        BATCH,
    )
    await conn.execute(
        "INSERT INTO hubspot_webhook_events (dedup_key, subscription_type, raw, status, job_id)"
        " SELECT 'mine-' || q.id, 'company.propertyChange', $1::jsonb, 'queued', q.id"
        " FROM hubspot_sync_queue q WHERE q.state = 'running' OR (q.last_error_kind ="
        " 'superseded' AND q.entity_key = ANY(SELECT 'e' || g FROM generate_series(0, $2 - 1) g))",
        RAW_EVENT,
        BATCH,
    )
    await conn.execute(
        "INSERT INTO hubspot_webhook_events (dedup_key, subscription_type, raw, status, job_id)"
        " SELECT 'done-' || g, 'company.propertyChange', $1::jsonb, 'processed', 200000000 + g"
        " FROM generate_series(1, $2) g",
        RAW_EVENT,
        BACKGROUND_PROCESSED,
    )
    return sorted(row["id"] for row in rows)


async def queue_more(conn: asyncpg.Connection, have: int, want: int, *, analyze: bool) -> None:
    if want > have:
        await conn.execute(
            "INSERT INTO hubspot_webhook_events (dedup_key, subscription_type, raw, status,"
            " job_id) SELECT 'other-' || g, 'company.propertyChange', $1::jsonb, 'queued',"
            " 100000000 + g FROM generate_series($2 + 1, $3) g",
            RAW_EVENT,
            have,
            want,
        )
    if analyze or not have:  # stale: the statistics of before the backlog (0 queued)
        await conn.execute("VACUUM ANALYZE hubspot_webhook_events")
        await conn.execute("VACUUM ANALYZE hubspot_sync_queue")


async def time_step(
    conn: asyncpg.Connection, statement: dict[str, Any], ids: list[int], runs: int
) -> tuple[float, int]:
    """The statement's median time (ms) over `runs`, and the pages one run touched."""
    values = {**statement["bound"], "ids": ids, "at": datetime.now(UTC)}
    args = [values[name] for name in statement["names"]]
    mine = await conn.fetchval(
        "SELECT count(*) FROM hubspot_webhook_events WHERE dedup_key LIKE 'mine-%'"
    )
    took = []
    for _ in range(runs):
        transaction = conn.transaction()
        await transaction.start()
        try:
            start = time.perf_counter()
            await conn.execute(statement["sql"], *args)
            took.append((time.perf_counter() - start) * 1000)
            closed = await conn.fetch(
                "SELECT dedup_key FROM hubspot_webhook_events WHERE status = 'processed'"
                " AND dedup_key NOT LIKE 'done-%'"
            )
        finally:
            await transaction.rollback()
        wrong = [row["dedup_key"] for row in closed if not row["dedup_key"].startswith("mine-")]
        if len(closed) != mine or wrong:
            raise SystemExit(f"closed {len(closed)} events, not the {mine} expected: {wrong[:5]}")
    transaction = conn.transaction()
    await transaction.start()
    try:
        plan = await conn.fetchval(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement['sql']}", *args
        )
    finally:
        await transaction.rollback()
    top = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    pages = int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0))
    return statistics.median(took), pages


async def measure_tree(
    name: str, statement: dict[str, Any], args: argparse.Namespace
) -> dict[int, tuple[float, int]]:
    conn = await asyncpg.connect(libpq(name))
    try:
        ids = await fill(conn, args.entities, args.history)
        found: dict[int, tuple[float, int]] = {}
        have = 0
        for queued in args.queued:
            await queue_more(conn, have, queued, analyze=args.statistics == "fresh")
            have = max(have, queued)
            found[queued] = await time_step(conn, statement, ids, args.runs)
            ms, pages = found[queued]
            print(f"  {queued:>9,} queued: {ms:.2f} ms, {pages} pages, the right events closed")
        return found
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queued", default="0,10000,100000")
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--statistics",
        choices=("fresh", "stale"),
        default="fresh",
        help="ANALYZE after each step (fresh), or only before the backlog, as after a burst of"
        " webhooks autovacuum has not caught up with (stale)",
    )
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=PATH")
    args = parser.parse_args()
    args.queued = sorted(int(n) for n in args.queued.split(","))
    if args.entities < BATCH:
        parser.error(f"--entities must be at least {BATCH}")
    roots = trees(parser, args.also)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print(
        f"batch {BATCH}, {args.entities:,} entities x {args.history} finished jobs"
        f" (1 in 50 superseded), {BACKGROUND_PROCESSED:,} processed events,"
        f" median of {args.runs} runs a step, {args.statistics} statistics"
    )
    results: dict[str, dict[int, tuple[float, int]]] = {}
    for label, root in roots.items():
        print(f"{label} ({root}):")
        with database() as name:
            migrated = migrate(name, root)
            if migrated.returncode != 0:
                raise SystemExit(migrated.stderr)
            results[label] = asyncio.run(measure_tree(name, statement_of(root), args))
    print()
    print("| queued events of other jobs | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for queued in args.queued:
        cells = [
            f"{results[label][queued][0]:.2f} ms ({results[label][queued][1]} pages)"
            for label in results
        ]
        print(f"| {queued:,} | " + " | ".join(cells) + " |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
