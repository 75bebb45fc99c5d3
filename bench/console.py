"""The operator's console at scale: the dashboard and a customer's page with 100,000 customers
and 1,000,000 log rows, timed from an HTTP client (median of each round, several rounds).

    .venv/bin/python -m bench.console [--customers 100000] [--log-rows 1000000] [--rounds 5]

Real processes on loopback: `hubsync sandbox` as HubSpot and `hubsync serve` (worker and
scheduler off, so nothing changes while it is timed) on a fresh PostgreSQL database filled by
SQL: the customers, a link for 95 % of them, 10 field states each, the log spread over 30
days, 7 days of finished jobs (one per 6 s), failed and pending jobs, 7 days of webhook
events, open and resolved conflicts; then ANALYZE. Each page is fetched signed in, HTML and
its JSON twin, for a random customer each time.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from app.sync.core.rules import DEFAULT_RULES
from bench.outbound import database, libpq, machine, prepare, services

PASSWORD = "bench-console-password"  # noqa: S105 -- a throwaway password for a local benchmark
SECRET_KEY = "bench-console-secret-key-" + "x" * 24
TOKEN = "bench-token"  # noqa: S105 -- bench.outbound's token
FIELDS = tuple(rule.warp_field for rule in DEFAULT_RULES)  # a field state for each
CHANGES = (
    '[{"field": "current_balance", "property": "warp_current_balance", "target": "hubspot",'
    ' "old": "10.00", "new": "12.50", "reason": "WARP changed"}]'
)


def fill(name: str, customers: int, log_rows: int) -> None:
    """Everything the console reads, at the stated sizes, by SQL on the server side."""
    fields = ", ".join(f"('{field}')" for field in FIELDS)
    statements = [
        "CREATE TEMP TABLE cid AS SELECT row_number() OVER (ORDER BY id) AS n, id::text AS id,"
        " ban FROM accounts.customers",
        "CREATE INDEX ON cid (n)",
        "INSERT INTO hubspot_entity_links (warp_customer_id, hubspot_company_id, warp_ban,"
        " state, last_synced_at, created_at, updated_at)"
        " SELECT id, (10000000 + n)::text, ban, 'active', now(), now(), now() FROM cid"
        " WHERE n % 20 <> 0",
        "INSERT INTO hubspot_field_state (warp_customer_id, field, warp_value, hubspot_value,"
        " base_value, warp_changed_at, hubspot_changed_at, synced_at, updated_at)"
        f" SELECT cid.id, f.field, 'v', 'v', 'v', now(), now(), now(), now() FROM cid"
        f" CROSS JOIN (VALUES {fields}) AS f(field)",
        "INSERT INTO hubspot_sync_log (job_id, warp_customer_id, hubspot_company_id, source,"
        " direction, outcome, changes, duration_ms, created_at)"
        f" SELECT g, cid.id, (10000000 + cid.n)::text, 'api', 'to_hubspot', 'updated',"
        f" '{CHANGES}'::jsonb, 12, now() - g * interval '1 second' * {30 * 86400 / log_rows}"
        f" FROM generate_series(1, {log_rows}) AS g JOIN cid ON cid.n = 1 + g % {customers}",
        "INSERT INTO hubspot_sync_queue (entity_type, entity_key, direction, source, state,"
        " priority, attempts, run_at, created_at, updated_at, finished_at)"
        " SELECT 'customer', cid.id, 'to_hubspot', 'api', 'done', 5, 1, t, t, t, t"
        " FROM (SELECT g, now() - g * interval '6 seconds' AS t"
        "       FROM generate_series(1, 100000) AS g) AS s"
        f" JOIN cid ON cid.n = 1 + s.g % {customers}",
        "INSERT INTO hubspot_sync_queue (entity_type, entity_key, direction, source, state,"
        " attempts, last_error, last_error_kind, finished_at, run_at)"
        " SELECT 'customer', id, 'to_hubspot', 'api', 'failed', 1,"
        " 'Property values were not valid: warp_customer_type', 'validation', now(), now()"
        " FROM cid WHERE n <= 1000",
        "INSERT INTO hubspot_sync_queue (entity_type, entity_key, direction, source, state,"
        " run_at) SELECT 'customer', id, 'to_hubspot', 'api', 'pending', now() FROM cid"
        " WHERE n > 1000 AND n <= 1500",
        "INSERT INTO hubspot_webhook_events (dedup_key, event_id, subscription_type, object_id,"
        " property_name, property_value, raw, status, received_at, processed_at)"
        " SELECT md5(g::text), g, 'company.propertyChange', (10000000 + 1 + g % 1000)::text,"
        " 'name', 'x', '{}'::jsonb, CASE WHEN g % 500 = 0 THEN 'failed' ELSE 'processed' END,"
        " now() - g * interval '3 seconds', now() FROM generate_series(1, 200000) AS g",
        "INSERT INTO hubspot_conflicts (warp_customer_id, field, warp_value, hubspot_value,"
        " state, detected_at) SELECT id, 'company_name', 'a', 'b',"
        " CASE WHEN n <= 200 THEN 'open' ELSE 'resolved' END, now()"
        " FROM cid WHERE n <= 2200",
    ]
    with psycopg.connect(libpq(name), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]
        for table in (
            "accounts.customers",
            "hubspot_entity_links",
            "hubspot_field_state",
            "hubspot_sync_log",
            "hubspot_sync_queue",
            "hubspot_webhook_events",
            "hubspot_conflicts",
        ):
            conn.execute(f"VACUUM ANALYZE {table}")  # type: ignore[arg-type]


def signed_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/admin/login")
    token = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    answer = client.post(
        "/admin/login", data={"csrftoken": token.group(1), "password": PASSWORD, "name": "bench"}
    )
    assert answer.status_code == 303, answer.text[:300]
    return client


def timed(client: httpx.Client, path: str, headers: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    response = client.get(path, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--log-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="per page per round")
    parser.add_argument("--out", help="also write the results to this file")
    args = parser.parse_args()
    lines = [
        f"bench.console {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}",
        f"{args.customers:,} customers, {args.log_rows:,} log rows, {args.rounds} rounds of "
        f"{args.requests} requests per page",
    ]
    print(*lines, sep="\n", flush=True)
    with database() as name:
        started = time.monotonic()
        ids = prepare(name, args.customers)
        fill(name, args.customers, args.log_rows)
        print(f"filled in {time.monotonic() - started:.0f} s", flush=True)
        env = {
            "HUBSYNC_ADMIN_PASSWORD": PASSWORD,
            "HUBSYNC_SECRET_KEY": SECRET_KEY,
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_SCHEDULER": "false",
            "WARP_CUSTOMERS_TABLE": "accounts.customers",
        }
        with services(name, **env) as (_sandbox, hubsync):
            client = signed_in(hubsync)
            auth = {"Authorization": f"Bearer {TOKEN}"}
            rng = random.Random(7)
            pages = {
                "dashboard (HTML)": lambda: "/admin/",
                "dashboard (JSON)": lambda: "/v1/sync/dashboard",
                "customer page (HTML)": lambda: f"/admin/customers/{rng.choice(ids)}",
                "customer (JSON)": lambda: f"/v1/sync/customers/{rng.choice(ids)}",
                "failed jobs (HTML)": lambda: "/admin/failed",
                "customer search by BAN (HTML)": lambda: "/admin/customers?q=ZT-700050000",
            }
            for path_of in pages.values():  # warm up: connections, caches, templates
                for _ in range(3):
                    timed(client, path_of(), auth)
            results: dict[str, list[float]] = {label: [] for label in pages}
            for _ in range(args.rounds):
                for label, path_of in pages.items():
                    samples = [timed(client, path_of(), auth) for _ in range(args.requests)]
                    results[label].append(statistics.median(samples))
            client.close()
    lines += ["", "page | median of round medians (ms) | round medians (ms)", "---|---|---"]
    for label, medians in results.items():
        rounds = ", ".join(f"{m:.1f}" for m in medians)
        lines.append(f"{label} | {statistics.median(medians):.1f} | {rounds}")
    print(*lines[2:], sep="\n")
    if args.out is not None:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
