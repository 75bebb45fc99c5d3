"""Benchmark: a webhook backlog drained by the running service.

What an outage leaves behind: HubSpot kept sending webhooks while hubsync could not call it
(here every call is refused with a 429), so events wait, `queued`, with their jobs; then
HubSpot answers again and the worker drains the backlog. Every batch closes the events of its
jobs. Until 2026-12-07 that statement read every queued event of the deployment
(bench/README.md, "Eleventh pass"), so each batch cost more the larger the backlog was,
exactly while it needed draining.

Real processes on loopback: the sandbox (`hubsync sandbox`, as HubSpot, with its latency
model) and `hubsync serve` (worker on) on a fresh PostgreSQL database with `--customers`
customers, all created in the sandbox first (bench.outbound's set-up). Then, `--runs` times:

1. the outage: the sandbox answers every API call with a 429 (`PUT /_sandbox/faults`);
2. every company renamed in the sandbox (as a person in HubSpot would), and `--events` signed
   property-change events for each (distinct event ids), in deliveries of 100, to
   `POST /v1/webhooks/hubspot`; waited for until every one is stored and queued;
3. `ANALYZE`, as autovacuum would within a minute of such a burst (this benchmark's machine
   runs with autovacuum off; `--no-analyze` drains on the statistics of before the backlog);
4. the sandbox answers again, and the time until no job is pending or running and no event is
   queued; every company's new name must then be in WARP.

Printed: the drain's time and jobs/s, and the CPU hubsync and PostgreSQL spent per batch of
100 jobs while draining (from /proc, as bench.outbound does). `--hubsync-root` serves another
checkout's code (the commit before a change) on the same set-up.

    .venv/bin/python -m bench.backlog_drain [--customers 20000] [--events 5] [--runs 1]
        [--rate-limit 250/10s] [--latency-model hubspot-2026] [--hubsync-root PATH]

PostgreSQL: HUBSYNC_TEST_POSTGRES_URL (as bench.outbound).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import time
from pathlib import Path

import httpx
import psycopg

from bench.outbound import (
    DEFAULT_LATENCY_MODEL,
    ROOT,
    SERVE_PIDS,
    analyze,
    database,
    enqueue_all,
    libpq,
    machine,
    postgres_cpu,
    prepare,
    process_tree_cpu,
    queue_counts,
    services,
    wait_idle,
)
from bench.webhook_intake import PATH, signed

_event_id = itertools.count(5_000_000_000)


def outage(sandbox: str, latency_model: str, on: bool) -> None:
    """HubSpot refuses every call with a 429 (Retry-After: 1 s), or answers again."""
    faults: dict[str, object] = {"error_rate": 1.0, "statuses": [429]} if on else {}
    if latency_model != "none":
        faults["latency_model"] = latency_model
    httpx.put(f"{sandbox}/_sandbox/faults", json=faults, timeout=30).raise_for_status()


def linked_companies(name: str) -> list[str]:
    with psycopg.connect(libpq(name)) as conn:
        rows = conn.execute(
            "SELECT hubspot_company_id FROM hubspot_entity_links"
            " WHERE hubspot_company_id IS NOT NULL ORDER BY hubspot_company_id"
        ).fetchall()
    return [row[0] for row in rows]


def deliveries(companies: list[str], per_company: int, run: int) -> list[bytes]:
    """Every company's events, a change of its name each, in deliveries of 100."""
    moment = int(time.time() * 1000)
    events = [
        {
            "eventId": next(_event_id),
            "subscriptionId": 7,
            "portalId": 62515,
            "appId": 4242,
            "occurredAt": moment + n,
            "subscriptionType": "company.propertyChange",
            "attemptNumber": 0,
            "objectId": int(company),
            "propertyName": "name",
            "propertyValue": f"Renamed {run}.{company}",
            "changeSource": "CRM_UI",
            "sourceId": "userId:42",
        }
        for n in range(per_company)
        for company in companies
    ]
    return [
        json.dumps(events[start : start + 100], separators=(",", ":")).encode()
        for start in range(0, len(events), 100)
    ]


async def rename_all(sandbox: str, companies: list[str], run: int, concurrency: int = 16) -> None:
    """A person renames every company in HubSpot (the sandbox's own edit; no webhook is sent
    by the sandbox here, the benchmark sends its own): each job has a WARP write to make."""
    todo = iter(companies)

    async def editor(client: httpx.AsyncClient) -> None:
        for company in todo:
            body = {"properties": {"name": f"Renamed {run}.{company}"}}
            answer = await client.patch(f"/_sandbox/companies/{company}", json=body)
            answer.raise_for_status()

    async with httpx.AsyncClient(base_url=sandbox, timeout=60) as client:
        await asyncio.gather(*(editor(client) for _ in range(concurrency)))


async def deliver_all(hubsync: str, bodies: list[bytes], concurrency: int = 8) -> None:
    todo = iter(bodies)

    async def sender(client: httpx.AsyncClient) -> None:
        for body in todo:
            answer = await client.post(PATH, content=body, headers=signed(hubsync, body))
            if answer.status_code != 200:
                raise RuntimeError(f"delivery refused: {answer.status_code} {answer.text[:200]}")

    async with httpx.AsyncClient(base_url=hubsync, timeout=60) as client:
        await asyncio.gather(*(sender(client) for _ in range(concurrency)))


def counts(name: str) -> tuple[int, int]:
    """(events queued, jobs pending or running)."""
    with psycopg.connect(libpq(name)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM hubspot_webhook_events WHERE status = 'queued'"
        ).fetchone()
    jobs = queue_counts(name)
    return int(row[0]) if row else 0, jobs.get("pending", 0) + jobs.get("running", 0)


def wait_for(name: str, queued: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if counts(name)[0] >= queued:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{counts(name)[0]} events queued, not {queued}")


def drain_once(sandbox: str, hubsync: str, name: str, args: argparse.Namespace, run: int) -> float:
    companies = linked_companies(name)
    outage(sandbox, args.latency_model, True)
    start = time.monotonic()
    asyncio.run(rename_all(sandbox, companies, run))
    asyncio.run(deliver_all(hubsync, deliveries(companies, args.events, run)))
    wanted = len(companies) * args.events
    wait_for(name, wanted)
    if not args.no_analyze:
        analyze(name)
    queued, jobs = counts(name)
    print(
        f"run {run}: {wanted:,} events delivered and queued in {time.monotonic() - start:.1f} s;"
        f" {queued:,} events queued, {jobs:,} jobs waiting"
    )
    pid = SERVE_PIDS[hubsync]
    cpu_before, pg_before = process_tree_cpu(pid), postgres_cpu()
    t0 = time.monotonic()
    outage(sandbox, args.latency_model, False)
    wait_idle(name, 3600)
    while counts(name)[0]:
        time.sleep(0.2)
    took = time.monotonic() - t0
    with psycopg.connect(libpq(name)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM accounts.customers WHERE company_name LIKE %s",
            (f"Renamed {run}.%",),
        ).fetchone()
    landed = int(row[0]) if row else 0
    batches = jobs / 100
    hubsync_ms = (process_tree_cpu(pid) - cpu_before) * 1000 / batches
    pg_after = postgres_cpu()
    pg = (
        ""
        if pg_before is None or pg_after is None
        else f", PostgreSQL CPU {(pg_after - pg_before) * 1000 / batches:.1f} ms"
    )
    print(
        f"run {run}: drained {jobs:,} jobs and {queued:,} events in {took:.1f} s"
        f" ({jobs / took:.0f} jobs/s), {landed:,} of {len(companies):,} new names in WARP;"
        f" per batch of 100: hubsync CPU {hubsync_ms:.1f} ms{pg}"
    )
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=5, help="events per company")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rate-limit", default="250/10s")
    parser.add_argument("--latency-model", default=DEFAULT_LATENCY_MODEL)
    parser.add_argument("--hubsync-root", type=Path, default=ROOT)
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="drain on the statistics of before the backlog (autovacuum not yet caught up)",
    )
    args = parser.parse_args()
    model = None if args.latency_model == "none" else args.latency_model
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the start")
    print(
        f"command: python -m bench.backlog_drain --customers {args.customers} --events"
        f" {args.events} --runs {args.runs} --rate-limit {args.rate_limit} --latency-model"
        f" {args.latency_model}"
        + (f" --hubsync-root {args.hubsync_root}" if args.hubsync_root != ROOT else "")
        + (" --no-analyze" if args.no_analyze else "")
    )
    with database() as name:
        ids = prepare(name, args.customers)
        with services(name, model, 1, args.rate_limit, args.hubsync_root) as (sandbox, hubsync):
            t0 = time.monotonic()
            enqueue_all(hubsync, ids)
            wait_idle(name, 3600)
            print(f"setup: {args.customers} companies created in {time.monotonic() - t0:.1f} s")
            took = [
                drain_once(sandbox, hubsync, name, args, run) for run in range(1, args.runs + 1)
            ]
    print(f"median drain: {statistics.median(took):.1f} s over {len(took)} run(s)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
