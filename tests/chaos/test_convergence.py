"""The convergence suite (issue 12): two hubsync worker processes on PostgreSQL, random edits
on both sides, 20 % HubSpot faults (429, 5xx, gateway timeouts), duplicated and reordered
webhooks, one `kill -9` of a worker and one drop of every PostgreSQL connection mid-run.

When it has quiesced: every pair holds what the rules decide from the edit history, no company
is duplicated, no job is pending, running or failed, no webhook event is left unprocessed, and
the log explains every write without ping-pong. It prints its seed and counts.

One case the rules cannot date is set apart (see `Run.undatable_rename` and the strict xfail
in tests/integration/test_latest_wins_times.py): there both sides must still agree.

Seeded and bounded: CHAOS_SEED (default: random, printed), CHAOS_SECONDS of edits (default
20), CHAOS_CUSTOMERS (default 20). `make chaos` runs a longer one.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store.db import create_engine
from app.store.models import EntityLink, FieldState, SyncJob, SyncLog, WebhookEvent
from app.warp.schema import customers_table
from tests.chaos.harness import AUTH, Cluster, cluster, hubspot_faults
from tests.conftest import _libpq

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))
SECONDS = float(os.environ.get("CHAOS_SECONDS", "20"))
CUSTOMERS = int(os.environ.get("CHAOS_CUSTOMERS", "20"))
FAULT_RATE = 0.2
STATUSES = ("ACTIVE", "SUSPENDED", "CLOSED")


@dataclass
class Edit:
    at: float
    side: str  # "warp" or "hubspot"
    customer: str
    field: str  # the WARP field
    value: str


@dataclass
class History:
    edits: list[Edit] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def last(self, customer: str, name: str, side: str | None = None) -> Edit | None:
        found = [
            e
            for e in self.edits
            if e.customer == customer and e.field == name and side in (None, e.side)
        ]
        return found[-1] if found else None


class Run:
    def __init__(self, engine: AsyncEngine, cluster_: Cluster, rng: random.Random) -> None:
        self.engine = engine
        self.cluster = cluster_
        self.rng = rng
        self.table = customers_table("accounts.customers")
        self.history = History()
        self.customers: dict[str, str] = {}  # customer id -> company id
        self.initial: dict[str, dict[str, str]] = {}
        self.http = httpx.AsyncClient(timeout=10)
        self.seq = 0

    async def seed_customers(self, count: int) -> None:
        rows = [
            {
                "id": f"00000000-0000-4000-8000-{n:012d}",
                "ban": f"ZT-{700000000 + n}",
                "company_name": f"Chaos {n}",
                "customer_type": "POSTPAID",
                "status": "ACTIVE",
                "credit_limit": Decimal(1000),
                "current_balance": Decimal(0),
                "contact": {"email": f"billing@chaos{n}.example"},
                "services": {"voice": {"enabled": True}},
                "external_ids": {},
            }
            for n in range(count)
        ]
        async with self.engine.begin() as connection:
            await connection.execute(self.table.insert(), rows)
        for row in rows:
            self.initial[row["id"]] = {
                "company_name": row["company_name"],
                "status": "ACTIVE",
                "current_balance": "0",
                "credit_limit": "1000",
            }
        answer = await self.http.post(
            self.service().url + "/v1/sync/customers/queue",
            json={"customer_ids": [r["id"] for r in rows]},
            headers=AUTH,
        )
        assert answer.status_code == 202, answer.text
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            async with self.engine.connect() as connection:
                links = await connection.execute(
                    select(EntityLink.warp_customer_id, EntityLink.hubspot_company_id).where(
                        EntityLink.state == "active"
                    )
                )
                self.customers = {row[0]: row[1] for row in links if row[0]}
            if len(self.customers) == count:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"only {len(self.customers)} of {count} customers linked")

    def service(self) -> Any:
        alive = [p for p in self.cluster.services.values() if p.alive]
        return self.rng.choice(alive)

    async def edit_warp(self, customer: str) -> None:
        self.seq += 1
        name = self.rng.choice(["company_name", "company_name", "status", "current_balance"])
        if name == "company_name":
            value: Any = f"WARP {self.seq}"
        elif name == "status":
            current = self.history.last(customer, "status")
            before = current.value if current else "ACTIVE"
            value = self.rng.choice([s for s in STATUSES if s != before])
        else:
            value = Decimal(self.seq)
        async with self.engine.begin() as connection:
            await connection.execute(
                self.table.update()
                .where(self.table.c.id == customer)
                .values({name: value, "updated_at": func.now()})
            )
        self.history.edits.append(Edit(time.time(), "warp", customer, name, str(value)))
        self.history.counts["warp edits"] += 1
        try:  # the WARP gateway tells hubsync, as it does after every change
            await self.http.post(
                f"{self.service().url}/v1/sync/customers/{customer}/queue", headers=AUTH
            )
        except httpx.HTTPError:
            self.history.counts["gateway posts refused"] += 1  # reconciliation's job; rare

    async def edit_hubspot(self, customer: str) -> None:
        self.seq += 1
        roll = self.rng.random()
        if roll < 0.5:
            name, prop, value = "company_name", "name", f"HubSpot {self.seq}"
        elif roll < 0.9:
            name, prop, value = "credit_limit", "warp_credit_limit", str(2000 + self.seq)
        else:  # a person scribbles on a WARP-owned field: WARP's value must come back
            name, prop, value = "status:hubspot", "warp_status", f"SCRIBBLE{self.seq}"
        company = self.customers[customer]
        assert self.cluster.sandbox is not None
        answer = await self.http.patch(
            f"{self.cluster.sandbox.url}/_sandbox/companies/{company}",
            json={"properties": {prop: value}, "userId": 7},
        )
        assert answer.status_code == 200, answer.text
        self.history.edits.append(Edit(time.time(), "hubspot", customer, name, value))
        self.history.counts["hubspot edits"] += 1

    async def drop_database_connections(self) -> int:
        url = self.cluster.database_url
        with psycopg.connect(_libpq(url), autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        await self.engine.dispose()  # this test's own pooled connections went too
        return len(rows)

    async def quiesce(self, within: float = 180) -> None:
        assert self.cluster.sandbox is not None
        deadline = time.monotonic() + within
        idle_rounds = 0
        while time.monotonic() < deadline:
            stats = (await self.http.get(self.cluster.sandbox.url + "/_sandbox/stats")).json()
            async with self.engine.connect() as connection:
                busy = await connection.scalar(
                    select(func.count()).where(SyncJob.state.in_(["pending", "running"]))
                )
            waiting = stats.get("webhooks_pending", 0) + stats.get("webhooks_retrying", 0)
            idle_rounds = idle_rounds + 1 if busy == 0 and waiting == 0 else 0
            if idle_rounds >= 3:
                return
            await asyncio.sleep(0.7)
        raise AssertionError(f"not quiet within {within} s: {busy} jobs busy, {stats}")

    def undatable_rename(self, customer: str) -> bool:
        """The one case the rules cannot date (the strict xfail in
        tests/integration/test_latest_wins_times.py): WARP's last rename, then a later HubSpot
        rename, then another WARP edit of the same customer — if hubsync had not read the WARP
        rename before that edit, it takes the edit's updated_at and wins."""
        warp_rename = self.history.last(customer, "company_name", "warp")
        last_rename = self.history.last(customer, "company_name")
        if warp_rename is None or last_rename is None or last_rename.side != "hubspot":
            return False
        return (
            any(
                e.side == "warp" and e.customer == customer and e.at > last_rename.at
                for e in self.history.edits
            )
            and warp_rename.at < last_rename.at
        )

    def expected(self, customer: str) -> dict[str, str]:
        """What the rules decide from the edit history, per WARP field (canonical text)."""
        want = dict(self.initial[customer])
        for name in ("status", "current_balance"):  # WARP -> HubSpot, authority WARP
            edit = self.history.last(customer, name, "warp")
            if edit is not None:
                want[name] = edit.value
        credit = self.history.last(customer, "credit_limit", "hubspot")  # HubSpot authority
        if credit is not None:
            want["credit_limit"] = credit.value
        name_edit = self.history.last(customer, "company_name")  # LATEST_WINS
        if name_edit is not None:
            want["company_name"] = name_edit.value
        return want


def canonical_number(value: object) -> str:
    return format(Decimal(str(value)).normalize(), "f") if value not in (None, "") else ""


async def drop(run: Run) -> None:
    run.history.counts["connections dropped"] += await run.drop_database_connections()


async def kill_and_replace(run: Run) -> None:
    victim = run.cluster.services["b"]
    victim.process.send_signal(signal.SIGKILL)  # kill -9, mid-whatever it was doing
    await victim.process.wait()
    run.history.counts["workers killed"] += 1
    await run.cluster.start_service("b2")  # two workers again


async def count_by(connection: AsyncConnection, column: Any) -> Counter[str]:
    rows = await connection.execute(select(column, func.count()).group_by(column))
    return Counter({str(row[0]): int(row[1]) for row in rows})


async def check_pairs(run: Run) -> list[str]:
    assert run.cluster.sandbox is not None
    companies = (await run.http.get(run.cluster.sandbox.url + "/_sandbox/companies")).json()[
        "results"
    ]
    by_id = {c["id"]: c["properties"] for c in companies}
    async with run.engine.connect() as connection:
        rows = {str(r.id): r for r in await connection.execute(select(run.table))}
    problems = []
    for customer, company in run.customers.items():
        want = run.expected(customer)
        row, props = rows[customer], by_id.get(company, {})
        have_warp = {
            "company_name": row.company_name,
            "status": row.status,
            "current_balance": canonical_number(row.current_balance),
            "credit_limit": canonical_number(row.credit_limit),
        }
        have_hubspot = {
            "company_name": props.get("name"),
            "status": props.get("warp_status"),
            "current_balance": canonical_number(props.get("warp_current_balance")),
            "credit_limit": canonical_number(props.get("warp_credit_limit")),
        }
        for name, value in want.items():
            expected = canonical_number(value) if name.endswith(("balance", "limit")) else value
            if name == "company_name" and run.undatable_rename(customer):
                # Known limitation (strict xfail elsewhere): either rename may win here, but
                # both sides must still agree on one of them.
                allowed = {expected, run.history.last(customer, "company_name", "warp").value}  # type: ignore[union-attr]
                if have_warp[name] != have_hubspot[name] or have_warp[name] not in allowed:
                    problems.append(f"{customer} {name}: sides differ or neither rename won")
                run.history.counts["undatable renames"] += 1
                continue
            if have_warp[name] != expected or have_hubspot[name] != expected:
                problems.append(
                    f"{customer} {name}: rules say {expected!r}, WARP has {have_warp[name]!r}, "
                    f"HubSpot has {have_hubspot[name]!r}"
                )
    return problems


async def diagnose(run: Run, problems: list[str], path: Path) -> None:
    """What hubsync saw of the customers whose fields came out off: their edits, sync log,
    field memory and webhook events, in `diagnosis.txt` beside the services' logs."""
    customers = sorted({problem.split()[0] for problem in problems})
    companies = [run.customers[c] for c in customers if c in run.customers]
    lines = []
    async with run.engine.connect() as connection:
        for customer in customers:
            lines.append(f"== {customer} (company {run.customers.get(customer)})")
            lines += [
                f"edit {e.at:.3f} {e.side} {e.field} {e.value}"
                for e in run.history.edits
                if e.customer == customer
            ]
            log = await connection.execute(
                select(SyncLog).where(SyncLog.warp_customer_id == customer).order_by(SyncLog.id)
            )
            lines += [
                f"log {r.created_at.timestamp():.3f} job {r.job_id} {r.source} {r.direction} "
                f"{r.outcome} {r.changes} {r.error or ''}"
                for r in log.scalars()
            ]
            state = await connection.execute(
                select(FieldState).where(FieldState.warp_customer_id == customer)
            )
            lines += [
                f"memory {r.field} warp={r.warp_value!r}@{r.warp_changed_at} "
                f"hubspot={r.hubspot_value!r}@{r.hubspot_changed_at} base={r.base_value!r}"
                for r in state.scalars()
            ]
        events = await connection.execute(
            select(WebhookEvent)
            .where(WebhookEvent.object_id.in_(companies))
            .order_by(WebhookEvent.id)
        )
        lines += [
            f"event {r.object_id} {r.property_name}={r.property_value!r} "
            f"at {r.occurred_at} received {r.received_at} {r.status} job {r.job_id}"
            for r in events.scalars()
        ]
    await asyncio.to_thread(path.write_text, "\n".join(lines) + "\n")


async def test_two_workers_converge_through_faults_kills_and_dropped_connections(  # noqa: PLR0915 -- one scenario, read top to bottom
    postgres_url: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    print(f"\nchaos: seed {SEED} ({SECONDS:g} s of edits, {CUSTOMERS} customers)")
    engine = create_engine(postgres_url, pool_size=5)
    try:
        async with cluster(postgres_url, tmp_path) as running:
            run = Run(engine, running, rng)
            await run.seed_customers(CUSTOMERS)
            assert running.sandbox is not None
            await run.http.put(
                running.sandbox.url + "/_sandbox/faults", json=hubspot_faults(SEED, FAULT_RATE)
            )
            started = time.monotonic()
            killed = dropped = False
            while (elapsed := time.monotonic() - started) < SECONDS:
                customer = rng.choice(list(run.customers))
                if rng.random() < 0.5:
                    await run.edit_warp(customer)
                else:
                    await run.edit_hubspot(customer)
                if not dropped and elapsed > SECONDS * 0.3:
                    await drop(run)
                    dropped = True
                if not killed and elapsed > SECONDS * 0.5:
                    await kill_and_replace(run)
                    killed = True
                await asyncio.sleep(rng.uniform(0.02, 0.1))
            if not dropped:  # a slow machine: the edits ended first
                await drop(run)
            if not killed:
                await kill_and_replace(run)
            await run.http.put(running.sandbox.url + "/_sandbox/faults", json={})
            await run.quiesce()
            (tmp_path / "history.txt").write_text(
                "\n".join(
                    f"{e.at:.3f} {e.side} {e.customer} {e.field} {e.value}"
                    for e in run.history.edits
                )
            )
            stats = (await run.http.get(running.sandbox.url + "/_sandbox/stats")).json()
            run.history.counts["faults injected"] = stats.get("faults_injected", 0)
            pair_problems = await check_pairs(run)
            if pair_problems:
                await diagnose(run, pair_problems, tmp_path / "diagnosis.txt")
            async with engine.connect() as connection:
                jobs = await count_by(connection, SyncJob.state)
                events = await count_by(connection, WebhookEvent.status)
                failed = list(
                    await connection.execute(
                        select(SyncJob.entity_key, SyncJob.last_error).where(
                            SyncJob.state == "failed"
                        )
                    )
                )
                log = list(
                    await connection.execute(select(SyncLog.warp_customer_id, SyncLog.changes))
                )
            companies = (await run.http.get(running.sandbox.url + "/_sandbox/companies")).json()[
                "results"
            ]
            await run.http.aclose()
    finally:
        await engine.dispose()

    counts = run.history.counts
    print(f"chaos: seed {SEED}; {dict(counts)}; jobs {dict(jobs)}; events {dict(events)}")

    bans = Counter(c["properties"].get("warp_ban") for c in companies)
    assert [ban for ban, n in bans.items() if n > 1] == [], "a company was duplicated"
    assert len(companies) == CUSTOMERS
    assert jobs["pending"] == jobs["running"] == 0
    assert failed == [], f"jobs failed: {failed[:5]}"
    assert events["received"] == events["queued"] == 0, "webhook events left unprocessed"
    writes: Counter[tuple[str, str]] = Counter()
    for customer, changes in log:
        for change in changes or []:
            assert change.get("reason"), f"a write without a reason: {change}"
            writes[(customer, change["field"])] += 1
    edits = Counter((e.customer, e.field.split(":")[0]) for e in run.history.edits)
    # The first sync writes each field once; after that, one write per edit at most.
    ping_pong = {key: n for key, n in writes.items() if n > edits.get(key, 0) + 1}
    assert ping_pong == {}, f"more writes than edits (ping-pong): {list(ping_pong.items())[:5]}"
    assert pair_problems == [], (
        f"{len(pair_problems)} field(s) off: {pair_problems[:8]}; what hubsync saw of them: "
        f"{tmp_path / 'diagnosis.txt'}"
    )
