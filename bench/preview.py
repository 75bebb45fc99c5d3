"""The preview at scale: `PUT /v1/sync/config?dry_run=true` (a rule flip) and
`PUT /v1/sync/scope?dry_run=true` with N linked customers, timed from an HTTP client.

    .venv/bin/python -m bench.preview [--customers 100000] [--rounds 3]

Real processes on loopback (`hubsync sandbox`, `hubsync serve` with worker and scheduler off)
on a fresh PostgreSQL database filled by SQL: N customers, an active link and a field state
per default rule for each; every tenth customer's name was changed on both sides since the
base, and a fifth of them are CLOSED. The rule flip (company_name LATEST_WINS -> MANUAL) must
forecast N/10 conflicts; the scope (`status not_in CLOSED`) N/5 leaving. No HubSpot
call is made (the sandbox's request count is checked).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import httpx
import psycopg

from app.sync.core.rules import DEFAULT_RULES, rule_to_dict
from bench.outbound import database, libpq, machine, prepare, sandbox_stats, services

TOKEN = {"Authorization": "Bearer bench-token"}


def fill(name: str) -> None:
    fields = ", ".join(
        f"('{rule.warp_field}', '{rule.hubspot_property}')" for rule in DEFAULT_RULES
    )
    with psycopg.connect(libpq(name)) as conn:
        for statement in (
            "CREATE TEMP TABLE cid AS SELECT row_number() OVER (ORDER BY id) AS n,"
            " id::text AS id, ban, company_name FROM accounts.customers",
            "UPDATE accounts.customers SET status = 'CLOSED' WHERE id::text IN"
            " (SELECT id FROM cid WHERE n % 5 = 0)",
            "INSERT INTO hubspot_entity_links (warp_customer_id, hubspot_company_id, warp_ban,"
            " state, last_synced_at, hubspot_read_at, created_at, updated_at)"
            " SELECT id, (10000000 + n)::text, ban, 'active', now(), now(), now(), now()"
            " FROM cid",
            # Remembered as in sync, except company_name for every tenth customer: changed on
            # both sides since the base.
            "INSERT INTO hubspot_field_state (warp_customer_id, field, hubspot_property,"
            " warp_value, hubspot_value, base_value, warp_changed_at, hubspot_changed_at,"
            " synced_at, updated_at)"
            " SELECT cid.id, f.field, f.prop,"
            "  CASE WHEN f.field = 'company_name' THEN cid.company_name ELSE 'x' END,"
            "  CASE WHEN f.field = 'company_name' AND cid.n % 10 = 0 THEN 'CRM name'"
            "       WHEN f.field = 'company_name' THEN cid.company_name ELSE 'x' END,"
            "  CASE WHEN f.field = 'company_name' AND cid.n % 10 = 0 THEN 'Old name'"
            "       WHEN f.field = 'company_name' THEN cid.company_name ELSE 'x' END,"
            "  now() - interval '1 hour', now() - interval '2 hours', now() - interval '1 hour',"
            "  now()"
            f" FROM cid CROSS JOIN (VALUES {fields}) AS f(field, prop)",
            "ANALYZE",
        ):
            conn.execute(statement)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    flipped = [
        dict(rule_to_dict(r), authority="MANUAL")
        if r.warp_field == "company_name"
        else rule_to_dict(r)
        for r in DEFAULT_RULES
    ]
    scope = {"conditions": [{"column": "status", "op": "not_in", "values": ["CLOSED"]}]}
    print(machine(), f"load average {os.getloadavg()[0]:.1f}")
    with database() as name:
        prepare(name, args.customers)
        fill(name)
        with services(
            name, latency_model=None, HUBSYNC_WORKER="false", HUBSYNC_SCHEDULER="false"
        ) as (sandbox, hubsync):
            before = sandbox_stats(sandbox)
            for label, path, body in (
                ("rules", "/v1/sync/config?dry_run=true", {"rules": flipped}),
                ("scope", "/v1/sync/scope?dry_run=true", scope),
            ):
                times = []
                for _ in range(args.rounds):
                    t0 = time.monotonic()
                    answer = httpx.put(hubsync + path, headers=TOKEN, json=body, timeout=120)
                    times.append(time.monotonic() - t0)
                    answer.raise_for_status()
                result = answer.json()
                summary = (
                    {
                        f["field"]: (f["write_hubspot"], f["write_warp"], f["conflicts"])
                        for f in result["fields"]
                    }
                    if label == "rules"
                    else {"leaving": result["leaving"], "entering": result["entering"]}
                )
                print(
                    f"load {os.getloadavg()[0]:.1f}; {label} preview, "
                    f"{args.customers} customers: median "
                    f"{statistics.median(times):.2f} s (max {max(times):.2f} s); {summary}"
                )
            after = sandbox_stats(sandbox)
            print(f"HubSpot requests during the previews: {after['requests'] - before['requests']}")


if __name__ == "__main__":
    main()
