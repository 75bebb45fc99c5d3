"""The operator's console and `/metrics` at scale: the dashboard, a customer's page, the
failed-jobs list and a Prometheus scrape with N customers and M sync-log rows, timed from an
HTTP client (median of each round, several rounds).

    .venv/bin/python -m bench.console [--customers 100000] [--log-rows 1000000] [--rounds 5]
        [--requests 20] [--before DIR] [--out FILE] [--keep | --reuse DATABASE]

Real processes on loopback: `hubsync sandbox` as HubSpot and `hubsync serve` (worker and
scheduler off, so nothing changes while it is timed) on a fresh PostgreSQL database filled on
the server side (INSERT ... SELECT generate_series, the big tables' secondary indexes dropped
during the load and built again after it, as a bulk load does): the customers in WARP's
`accounts.customers`, a link for 95 % of them, 10 field states each, the log spread over 30
days, as many finished jobs as customers over 7 days, 1 % failed and 0.5 % pending jobs, two
webhook events per customer over 7 days, open and resolved conflicts, 8 days of the
scheduler's minute samples; then VACUUM ANALYZE.
Each page is fetched signed in, HTML and its JSON twin, for a random customer each time.

`--before DIR` also times the code of another tree (e.g. `git worktree add /tmp/main main`):
the database is filled at that tree's schema, copied (CREATE DATABASE ... TEMPLATE), the copy
migrated to this tree's head (the migration's time is reported), and each round times the
two servers one after the other, the order swapped every round. `--keep` leaves the
databases for EXPLAIN (drop them after); `--reuse DATABASE` times this tree on one of them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from app.sync.core.rules import DEFAULT_RULES
from bench.migrate_stall import migrate
from bench.outbound import ADMIN_URL, ROOT, libpq, machine, services

PASSWORD = "bench-console-password"  # noqa: S105 -- a throwaway password for a local benchmark
SECRET_KEY = "bench-console-secret-key-" + "x" * 24
TOKEN = "bench-token"  # noqa: S105 -- bench.outbound's token
FIELDS = tuple(rule.warp_field for rule in DEFAULT_RULES)  # a field state for each
CHANGES = (
    '[{"field": "current_balance", "property": "warp_current_balance", "target": "hubspot",'
    ' "old": "10.00", "new": "12.50", "reason": "WARP changed"}]'
)
# The tables filled in bulk: their secondary indexes are built after the rows are in.
BULK_TABLES = (
    "hubspot_entity_links",
    "hubspot_field_state",
    "hubspot_sync_log",
    "hubspot_sync_queue",
    "hubspot_webhook_events",
)
SAMPLED_IDS = 5_000  # customers the pages pick from at random


def create_customers(conn: psycopg.Connection, customers: int) -> None:
    """WARP's table as bench.outbound makes it, filled on the server."""
    conn.execute(
        """CREATE SCHEMA accounts;
        CREATE TABLE accounts.customers (
          id uuid PRIMARY KEY, ban text UNIQUE NOT NULL, company_name text,
          customer_type text, status text, credit_limit numeric, current_balance numeric,
          contact jsonb, services jsonb, external_ids jsonb,
          created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now())"""
    )
    conn.execute(
        "INSERT INTO accounts.customers (id, ban, company_name, customer_type, status,"
        " credit_limit, current_balance, contact, services, external_ids)"
        " SELECT gen_random_uuid(), 'ZT-' || (700000000 + n), 'Bench Customer ' || n,"
        " 'POSTPAID', 'ACTIVE', 1000 + n, 0,"
        " jsonb_build_object('email', 'billing@bench' || n || '.example'),"
        """ '{"voice": {"enabled": true}, "messaging": {"enabled": false},"""
        """ "data": {"enabled": true}}'::jsonb, '{}'::jsonb"""
        f" FROM generate_series(0, {customers - 1}) AS n"
    )


@contextlib.contextmanager
def indexes_built_after(conn: psycopg.Connection, tables: tuple[str, ...]) -> Iterator[None]:
    """Drop the tables' indexes that back no constraint, and build them again on leaving."""
    found = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes i WHERE schemaname = 'public'"
        " AND tablename = ANY(%s) AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        (list(tables),),
    ).fetchall()
    for index_name, _ in found:
        conn.execute(f'DROP INDEX "{index_name}"')  # type: ignore[arg-type]
    yield
    conn.execute("SET maintenance_work_mem = '256MB'")
    for _, definition in found:
        conn.execute(definition)


def fill(name: str, customers: int, log_rows: int) -> None:
    """Everything the console reads, at sizes that follow `customers` and `log_rows`."""
    fields = ", ".join(f"('{field}')" for field in FIELDS)
    failed, pending = max(10, customers // 100), max(5, customers // 200)
    events, open_conflicts = 2 * customers, max(2, customers // 500)
    statements = [
        "CREATE TEMP TABLE cid AS SELECT row_number() OVER (ORDER BY id) AS n, id::text AS id,"
        " ban FROM accounts.customers",
        "CREATE UNIQUE INDEX ON cid (n)",
        "ANALYZE cid",
        "INSERT INTO hubspot_entity_links (warp_customer_id, hubspot_company_id, warp_ban,"
        " state, last_synced_at, created_at, updated_at)"
        " SELECT id, (10000000 + n)::text, ban, 'active', now(), now(), now() FROM cid"
        " WHERE n % 20 <> 0",
        "INSERT INTO hubspot_field_state (warp_customer_id, field, warp_value, hubspot_value,"
        " base_value, warp_changed_at, hubspot_changed_at, synced_at, updated_at)"
        f" SELECT cid.id, f.field, 'v', 'v', 'v', now(), now(), now(), now() FROM cid"
        f" CROSS JOIN (VALUES {fields}) AS f(field)",
        # In time order (oldest first), as a live log is written.
        "INSERT INTO hubspot_sync_log (job_id, warp_customer_id, hubspot_company_id, source,"
        " direction, outcome, changes, duration_ms, created_at)"
        f" SELECT g, cid.id, (10000000 + cid.n)::text, 'api', 'to_hubspot', 'updated',"
        f" '{CHANGES}'::jsonb, 12,"
        f" now() - ({log_rows} - g) * interval '1 second' * {30 * 86400 / log_rows}"
        f" FROM generate_series(1, {log_rows}) AS g JOIN cid ON cid.n = 1 + g % {customers}",
        "INSERT INTO hubspot_sync_queue (entity_type, entity_key, direction, source, state,"
        " priority, attempts, run_at, created_at, updated_at, finished_at)"
        " SELECT 'customer', cid.id, 'to_hubspot', 'api', 'done', 5, 1, t, t, t, t"
        f" FROM (SELECT g, now() - ({customers} - g) * interval '1 second' * "
        f"{7 * 86400 / customers} AS t FROM generate_series(1, {customers}) AS g) AS s"
        f" JOIN cid ON cid.n = 1 + s.g % {customers}",
        "INSERT INTO hubspot_sync_queue (entity_type, entity_key, direction, source, state,"
        " attempts, last_error, last_error_kind, finished_at, run_at)"
        " SELECT 'customer', id, 'to_hubspot', 'api', 'failed', 1,"
        " 'Property values were not valid: warp_customer_type', 'validation', now(), now()"
        f" FROM cid WHERE n <= {failed}",
        "INSERT INTO hubspot_sync_queue (entity_type, entity_key, direction, source, state,"
        " run_at) SELECT 'customer', id, 'to_hubspot', 'api', 'pending', now() FROM cid"
        f" WHERE n > {failed} AND n <= {failed + pending}",
        "INSERT INTO hubspot_webhook_events (dedup_key, event_id, subscription_type, object_id,"
        " property_name, property_value, raw, status, received_at, processed_at)"
        " SELECT md5(g::text), g, 'company.propertyChange', (10000000 + 1 + g % 1000)::text,"
        " 'name', 'x', '{}'::jsonb, CASE WHEN g % 500 = 0 THEN 'failed' ELSE 'processed' END,"
        f" now() - ({events} - g) * interval '1 second' * {7 * 86400 / events}, now()"
        f" FROM generate_series(1, {events}) AS g",
        # The scheduler's minute samples of the last 8 days (the dashboard's charts).
        "INSERT INTO hubsync_minute_samples (minute, jobs_done, jobs_failed, queue_depth,"
        " oldest_wait_seconds, webhook_events, hubspot_requests, hubspot_limit, hubspot_429,"
        " latency_p50_ms, latency_p99_ms) SELECT date_trunc('minute', now()) - g * interval"
        " '1 minute', 3, 0, 10, 1.5, 3, 40, 600, 0, 120, 900 FROM generate_series(2, 11520) g",
        "INSERT INTO hubspot_conflicts (warp_customer_id, field, warp_value, hubspot_value,"
        " state, detected_at) SELECT id, 'company_name', 'a', 'b',"
        f" CASE WHEN n <= {open_conflicts} THEN 'open' ELSE 'resolved' END, now()"
        f" FROM cid WHERE n <= {11 * open_conflicts}",
    ]
    with psycopg.connect(libpq(name), autocommit=True) as conn:
        create_customers(conn, customers)
        with indexes_built_after(conn, BULK_TABLES):
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE")


def sample_ids(name: str) -> list[str]:
    with psycopg.connect(libpq(name)) as conn:
        rows = conn.execute(
            f"SELECT id::text FROM accounts.customers ORDER BY random() LIMIT {SAMPLED_IDS}"
        ).fetchall()
    return [row[0] for row in rows]


def copy_database(source: str) -> str:
    name = f"hubsync_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')  # type: ignore[arg-type]
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


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


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def page_paths(ids: list[str], rng: random.Random) -> dict[str, Callable[[], str]]:
    return {
        "dashboard (HTML)": lambda: "/admin/",
        "dashboard (JSON)": lambda: "/v1/sync/dashboard",
        "customer page (HTML)": lambda: f"/admin/customers/{rng.choice(ids)}",
        "customer (JSON)": lambda: f"/v1/sync/customers/{rng.choice(ids)}",
        "failed jobs (HTML)": lambda: "/admin/failed",
        "customer search by BAN (HTML)": lambda: "/admin/customers?q=ZT-700050000",
        "/metrics scrape": lambda: "/metrics",
    }


def time_round(
    client: httpx.Client, pages: dict[str, Callable[[], str]], requests: int
) -> dict[str, float]:
    """The median of `requests` fetches of each page."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    return {
        label: statistics.median(timed(client, path_of(), auth) for _ in range(requests))
        for label, path_of in pages.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--log-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="per page per round")
    parser.add_argument("--before", type=Path, help="also time this tree's code (see above)")
    parser.add_argument("--out", help="also write the results to this file")
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases (to EXPLAIN on); drop them later"
    )
    parser.add_argument(
        "--reuse", metavar="DATABASE", help="time this tree on a database kept by --keep (no fill)"
    )
    args = parser.parse_args()
    if args.reuse is not None:
        reuse(args)
        return
    trees = {"after": ROOT} if args.before is None else {"before": args.before.resolve()}
    if args.before is not None:
        trees["after"] = ROOT
    lines = [
        f"bench.console {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}",
        f"{args.customers:,} customers, {args.log_rows:,} log rows, {args.rounds} rounds of "
        f"{args.requests} requests per page; load average at the start {load()}",
        "code: " + ", ".join(f"{label} {tree}" for label, tree in trees.items()),
    ]
    print(*lines, sep="\n", flush=True)
    databases: dict[str, str] = {}
    try:
        lines += prepare_databases(args, trees, databases)
        seeded = databases[next(iter(trees))]
        ids = sample_ids(seeded)
        results = run_rounds(trees, databases, ids, args.rounds, args.requests)
    finally:
        for name in databases.values():
            if args.keep:
                print(f"kept database {name}")
            else:
                drop_database(name)
    table = [f"load average at the end {load()}", *report(results)]
    lines += table
    print(*table, sep="\n")
    if args.out is not None:
        Path(args.out).write_text("\n".join(lines) + "\n")


def prepare_databases(
    args: argparse.Namespace, trees: dict[str, Path], databases: dict[str, str]
) -> list[str]:
    """The filled database at the first tree's schema, and (--before) its copy migrated to
    this tree's; named in `databases` as they are made. Returns the lines to report."""
    lines = []
    databases[next(iter(trees))] = seeded = copy_database("template0")
    started = time.monotonic()
    migrated = migrate(seeded, next(iter(trees.values())))
    if migrated.returncode != 0:
        raise SystemExit(migrated.stderr)
    fill(seeded, args.customers, args.log_rows)
    lines.append(f"filled in {time.monotonic() - started:.0f} s, load average {load()}")
    print(lines[-1], flush=True)
    if args.before is not None:
        started = time.monotonic()
        databases["after"] = copy_database(seeded)
        copied = time.monotonic() - started
        started = time.monotonic()
        migrated = migrate(databases["after"], ROOT)
        if migrated.returncode != 0:
            raise SystemExit(migrated.stderr)
        lines.append(
            f"copied in {copied:.0f} s; this tree's migrations on the copy took "
            f"{time.monotonic() - started:.0f} s"
        )
        print(lines[-1], flush=True)
        with psycopg.connect(libpq(databases["after"]), autocommit=True) as conn:
            conn.execute("ANALYZE")
    return lines


def reuse(args: argparse.Namespace) -> None:
    """This tree's server on a database filled by an earlier run, migrated to this tree first."""
    print(f"bench.console on kept database {args.reuse}; {machine()}; load average {load()}")
    migrated = migrate(args.reuse, ROOT)
    if migrated.returncode != 0:
        raise SystemExit(migrated.stderr)
    with psycopg.connect(libpq(args.reuse), autocommit=True) as conn:
        conn.execute("ANALYZE")
    results = run_rounds(
        {"after": ROOT}, {"after": args.reuse}, sample_ids(args.reuse), args.rounds, args.requests
    )
    print(f"load average at the end {load()}", *report(results), sep="\n")


def run_rounds(
    trees: dict[str, Path],
    databases: dict[str, str],
    ids: list[str],
    rounds: int,
    requests: int,
) -> dict[str, dict[str, list[float]]]:
    """Each round times every tree's server, the order swapped every round."""
    env = {
        "HUBSYNC_ADMIN_PASSWORD": PASSWORD,
        "HUBSYNC_SECRET_KEY": SECRET_KEY,
        "HUBSYNC_WORKER": "false",
        "HUBSYNC_SCHEDULER": "false",
        "WARP_CUSTOMERS_TABLE": "accounts.customers",
    }
    results: dict[str, dict[str, list[float]]] = {label: {} for label in trees}
    with contextlib.ExitStack() as stack:
        clients: dict[str, tuple[httpx.Client, dict[str, Callable[[], str]]]] = {}
        for label, tree in trees.items():
            _sandbox, hubsync = stack.enter_context(
                services(databases[label], code=tree, latency_model=None, **env)
            )
            client = signed_in(hubsync)
            stack.callback(client.close)
            pages = page_paths(ids, random.Random(7))
            time_round(client, pages, 3)  # warm up: connections, caches, templates
            clients[label] = (client, pages)
        order = list(trees)
        for _ in range(rounds):
            for label in order:
                client, pages = clients[label]
                for page, median in time_round(client, pages, requests).items():
                    results[label].setdefault(page, []).append(median)
            order.reverse()
    return results


def report(results: dict[str, dict[str, list[float]]]) -> list[str]:
    labels = list(results)
    lines = [
        "",
        "page | "
        + " | ".join(f"{label}: median of round medians (ms)" for label in labels)
        + " | "
        + " | ".join(f"{label}: round medians (ms)" for label in labels),
        "---|" + "---|" * (2 * len(labels)),
    ]
    for page in results[labels[0]]:
        medians = [f"{statistics.median(results[label][page]):.1f}" for label in labels]
        rounds = [", ".join(f"{m:.1f}" for m in results[label][page]) for label in labels]
        lines.append(f"{page} | " + " | ".join(medians) + " | " + " | ".join(rounds))
    return lines


if __name__ == "__main__":
    main()
