"""Inbound latency: a CRM edit in HubSpot until its value lands in WARP's customers table.

The whole way, as real processes on loopback and PostgreSQL: the HubSpot sandbox (`hubsync
sandbox`, HubSpot's 100 requests / 10 s, signed v3 webhooks batched for 50 ms as HubSpot
does) → `POST /v1/webhooks/hubspot` on `hubsync serve` (signature, group-committed store and
queue) → NOTIFY → the worker → the sync engine (reads the company back from the sandbox,
decides per field, writes WARP) → `accounts.customers.credit_limit`.

Setup: a fresh database with N customers (bench/outbound.py's `prepare`), all synced to the
sandbox once. Each run edits `warp_credit_limit` (a HubSpot-owned field) of distinct
companies, one at a time at `--rate` edits/s, each with a new value, through the sandbox's
`PATCH /_sandbox/companies/{id}` (what a person in HubSpot's UI does); a poller reads the
customers table every 5 ms and notes when each value is there (so figures are up to 5 ms
late). Reports p50/p99 per run and the median of the runs; also the first leg, edit → event
stored by hubsync, from the events' `received_at`.

    .venv/bin/python -m bench.inbound_latency [--runs 3] [--edits 200] [--rate 5]
        [--latency-model hubspot-2026]

The sandbox answers hubsync's API calls (the read of the company) with a latency model, by
default "hubspot-2026" (app/sandbox/latency.py; `none` turns it off); webhook deliveries keep
the sandbox's own 50 ms batching window.

PostgreSQL: HUBSYNC_TEST_POSTGRES_URL (default postgresql://root@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg

from bench.outbound import (
    DEFAULT_LATENCY_MODEL,
    HUBSPOT_TOKEN,
    TOKEN,
    database,
    enqueue_all,
    free_port,
    libpq,
    machine,
    percentile,
    prepare,
    process,
    wait_idle,
)

SECRET = "bench-webhook-secret"  # noqa: S105 -- a throwaway secret for a local benchmark
APP_ID = "1"
POLL_SECONDS = 0.005


def company_ids(name: str) -> dict[str, str]:
    """customer id -> HubSpot company id, after the first sync."""
    with psycopg.connect(libpq(name)) as conn:
        rows = conn.execute(
            "SELECT id::text, external_ids->>'hubspot_company_id' FROM accounts.customers"
            " WHERE external_ids ? 'hubspot_company_id' ORDER BY ban"
        ).fetchall()
    return dict(rows)


async def measure(
    sandbox: str, name: str, pairs: list[tuple[str, str]], rate: float, base_value: int
) -> tuple[list[float], dict[tuple[str, str], float]]:
    """Edit each (customer, company) once at `rate`/s; ms from edit to value in WARP, and the
    edit times by (company, value) for the first-leg figure."""
    expected: dict[str, Decimal] = {}
    sent: dict[str, float] = {}
    landed: dict[str, float] = {}
    edits: dict[tuple[str, str], float] = {}
    finished = asyncio.Event()
    all_landed = asyncio.Event()

    async def poll(connection: psycopg.AsyncConnection[tuple[str, Decimal]]) -> None:
        while not finished.is_set():
            waiting = [cid for cid in expected if cid not in landed]
            if waiting:
                cursor = await connection.execute(
                    "SELECT id::text, credit_limit FROM accounts.customers"
                    " WHERE id = ANY(%s::uuid[])",
                    (waiting,),
                )
                now = time.time()
                for customer_id, value in await cursor.fetchall():
                    if value == expected[customer_id]:
                        landed[customer_id] = now
            if len(landed) == len(pairs):
                all_landed.set()
            await asyncio.sleep(POLL_SECONDS)

    async with (
        await psycopg.AsyncConnection.connect(libpq(name), autocommit=True) as connection,
        httpx.AsyncClient(base_url=sandbox, timeout=10) as client,
    ):
        poller = asyncio.create_task(poll(connection))
        start = time.monotonic()
        for n, (customer_id, company_id) in enumerate(pairs):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            value = base_value + n
            expected[customer_id] = Decimal(value)
            sent[customer_id] = time.time()
            edits[(company_id, str(value))] = sent[customer_id]
            response = await client.patch(
                f"/_sandbox/companies/{company_id}",
                json={"properties": {"warp_credit_limit": str(value)}, "userId": 42},
            )
            response.raise_for_status()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_landed.wait(), timeout=60)
        finished.set()
        await poller
    missing = len(pairs) - len(landed)
    if missing:
        print(f"  {missing} edits did not reach WARP within 60 s", flush=True)
    return [(landed[cid] - sent[cid]) * 1000 for cid in sent if cid in landed], edits


def first_leg(name: str, edits: dict[tuple[str, str], float]) -> list[float]:
    """ms from each edit to hubsync having stored its webhook event (received_at)."""
    with psycopg.connect(libpq(name)) as conn:
        rows = conn.execute(
            "SELECT object_id, property_value, extract(epoch FROM received_at)"
            " FROM hubspot_webhook_events"
            " WHERE property_name = 'warp_credit_limit' AND change_source = 'CRM_UI'"
        ).fetchall()
    return [
        (float(received) - edits[(company, value)]) * 1000
        for company, value, received in rows
        if (company, value) in edits
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--edits", type=int, default=200, help="edits per run")
    parser.add_argument("--rate", type=float, default=5.0, help="edits per second")
    parser.add_argument("--latency-model", default=DEFAULT_LATENCY_MODEL, help="or 'none'")
    args = parser.parse_args()
    customers = args.edits * args.runs
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"sandbox latency model: {args.latency_model}")
    invocation = [Path(sys.executable).name, "-m", "bench.inbound_latency", *sys.argv[1:]]
    print(f"command: {' '.join(invocation)}", flush=True)
    sandbox_port, hubsync_port = free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    hubsync = f"http://127.0.0.1:{hubsync_port}"
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HUBSYNC_", "HUBSPOT_", "WARP_"))
    }
    with database() as name:
        ids = prepare(name, customers)
        sandbox_cmd = [sys.executable, "-m", "app.cli", "sandbox", "--port", str(sandbox_port)]
        sandbox_cmd += ["--webhook-url", f"{hubsync}/v1/webhooks/hubspot"]
        sandbox_cmd += ["--client-secret", SECRET, "--app-id", APP_ID]
        if args.latency_model != "none":
            sandbox_cmd += ["--latency-model", args.latency_model]
        env = {
            **base_env,
            "HUBSYNC_DATABASE_URL": libpq(name),
            "HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN,
            "HUBSPOT_BASE_URL": sandbox,
            "HUBSPOT_CLIENT_SECRET": SECRET,
            "HUBSPOT_APP_ID": APP_ID,
            "HUBSYNC_API_TOKENS": TOKEN,
            "HUBSYNC_LOG_LEVEL": "WARNING",
        }
        serve_cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(hubsync_port)]
        with (
            process(sandbox_cmd, base_env, f"{sandbox}/_sandbox/stats"),
            process(serve_cmd, env, f"{hubsync}/readyz"),
        ):
            started = time.monotonic()
            enqueue_all(hubsync, ids)
            wait_idle(name, 600)
            time.sleep(1.0)  # the echoes of our own writes arrive and are ignored
            wait_idle(name, 60)
            print(f"setup: {customers} customers synced in {time.monotonic() - started:.1f} s")
            pairs = list(company_ids(name).items())
            p50s, p99s, legs = [], [], []
            for run in range(args.runs):
                chosen = pairs[run * args.edits : (run + 1) * args.edits]
                latencies, edits = asyncio.run(
                    measure(sandbox, name, chosen, args.rate, 100_000 * (run + 1))
                )
                wait_idle(name, 60)
                stored = first_leg(name, edits)
                p50s.append(percentile(latencies, 0.5))
                p99s.append(percentile(latencies, 0.99))
                legs.append(percentile(stored, 0.5))
                print(
                    f"run {run + 1}: {len(latencies)} edits, edit -> WARP p50 {p50s[-1]:.0f} ms,"
                    f" p99 {p99s[-1]:.0f} ms, max {max(latencies):.0f} ms;"
                    f" edit -> event stored p50 {legs[-1]:.0f} ms",
                    flush=True,
                )
    print(
        f"median of {args.runs} runs: edit -> WARP p50 {statistics.median(p50s):.0f} ms,"
        f" p99 {statistics.median(p99s):.0f} ms; edit -> event stored p50"
        f" {statistics.median(legs):.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
