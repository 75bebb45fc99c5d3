"""Migrations that leave writers writing (PostgreSQL): every one runs under a lock_timeout, so one
that cannot take its lock gives up instead of queueing the table's writers behind it; indexes
on existing tables are built CONCURRENTLY, outside any transaction; 0004's backfill commits a
batch at a time. Run as the operator runs them (`hubsync migrate`), observed from other
connections."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from app.store import migrate, online_ddl
from app.store.db import create_engine
from tests.conftest import Database
from tests.integration.test_cli import run

SQL_ENV = {"HUBSYNC_DATABASE_URL": "postgresql+asyncpg://nobody@localhost/nothing"}
INDEXES_0006 = (
    "ix_hubspot_sync_queue_entity",
    "ix_hubspot_sync_queue_state_id",
    "ix_hubspot_sync_queue_finished",
    "ix_hubspot_sync_log_customer_id",
    "ix_hubspot_conflicts_state_id",
    "ix_hubspot_webhook_events_status_id",
)


def statements(sql: str) -> list[str]:
    """An offline script's statements, comments left out; a dollar-quoted body stays whole."""
    found, pending = [], ""
    for piece in sql.split(";\n"):
        pending = f"{pending};\n{piece}" if pending else piece
        if len(re.findall(r"\$\w*\$", pending)) % 2 == 0:
            lines = [line for line in pending.strip().splitlines() if not line.startswith("--")]
            if "\n".join(lines).strip():
                found.append("\n".join(lines).strip())
            pending = ""
    return found


def statements_outside_transactions(sql: str) -> list[str]:
    """The statements of an offline script that run outside BEGIN ... COMMIT."""
    outside, inside = [], False
    for statement in statements(sql):
        if statement == "BEGIN":
            inside = True
        elif statement == "COMMIT":
            inside = False
        elif not inside:
            outside.append(statement)
    return outside


def test_the_sql_sets_a_lock_timeout_before_any_revision(tmp_path: Path) -> None:
    """The whole session's lock_timeout comes first, so every revision (and every statement
    run outside a transaction) runs under it; nothing later lifts it."""
    result = run(["migrate", "--sql", "--from", "base"], SQL_ENV, tmp_path)
    assert result.returncode == 0, result.stderr
    assert statements(result.stdout)[0] == f"SET lock_timeout = '{migrate.LOCK_TIMEOUT}'"
    assert result.stdout.count("lock_timeout") == 1
    assert "statement_timeout" not in result.stdout


def test_indexes_on_existing_tables_are_built_concurrently_outside_a_transaction(
    tmp_path: Path,
) -> None:
    result = run(["migrate", "--sql", "--from", "0004"], SQL_ENV, tmp_path)
    assert result.returncode == 0, result.stderr
    outside = statements_outside_transactions(result.stdout)
    for name in INDEXES_0006:
        assert f"DROP INDEX CONCURRENTLY IF EXISTS {name}" in outside
        assert any(s.startswith(f"CREATE INDEX CONCURRENTLY {name} ON") for s in outside), name
    # Every index built on a table that already existed is among them.
    plain = re.findall(
        r"^CREATE (?:UNIQUE )?INDEX (?!CONCURRENTLY)(\w+) ON (\w+)", result.stdout, re.M
    )
    created = set(re.findall(r"^CREATE TABLE (\w+)", result.stdout, re.M))
    assert [index for index, table in plain if table not in created] == []


def test_the_backfill_runs_in_batches_outside_one_transaction(tmp_path: Path) -> None:
    result = run(["migrate", "--sql", "--from", "0003", "--revision", "0004"], SQL_ENV, tmp_path)
    assert result.returncode == 0, result.stderr
    outside = statements_outside_transactions(result.stdout)
    (block,) = [s for s in outside if s.startswith("DO $backfill$")]
    assert f"OFFSET {online_ddl.BATCH_ROWS - 1} LIMIT 1" in block
    assert "COMMIT" in block
    others = [s for s in statements(result.stdout) if not s.startswith("DO ")]
    assert not [s for s in others if "UPDATE hubspot_field_state" in s]


async def seed_field_state(database: Database, customers: int) -> None:
    """`customers` customers with two known fields and one no rule names, at revision 0003."""
    async with database.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO hubspot_field_state (warp_customer_id, field, warp_value) "
                "SELECT 'c' || lpad(g::text, 7, '0'), f, 'v' "
                "FROM generate_series(1, :n) g, "
                "unnest(ARRAY['company_name', 'status', 'retired.field']) f"
            ),
            {"n": customers},
        )


@pytest.mark.postgres
async def test_the_backfill_commits_batch_by_batch(postgres_url: str, tmp_path: Path) -> None:
    database = Database("postgresql", postgres_url, create_engine(postgres_url), "x.customers")
    try:
        await migrate.downgrade(database.engine, "0003")
        customers = 4000  # 12,000 rows: three batches at least
        await seed_field_state(database, customers)
        env = {"HUBSYNC_DATABASE_URL": postgres_url, "WARP_CUSTOMERS_TABLE": "x.customers"}
        result = await asyncio.to_thread(run, ["migrate", "--revision", "0004"], env, tmp_path)
        assert result.returncode == 0, result.stderr
        async with database.engine.connect() as connection:
            by_field = dict(
                (
                    await connection.execute(
                        text(
                            "SELECT field, string_agg(DISTINCT coalesce(hubspot_property, '-'), "
                            "',') FROM hubspot_field_state GROUP BY field"
                        )
                    )
                ).all()
            )
            # Each row written by its own batch's transaction: several, not one.
            transactions = (
                await connection.execute(
                    text("SELECT count(DISTINCT xmin::text) FROM hubspot_field_state")
                )
            ).scalar_one()
        assert by_field == {"company_name": "name", "status": "warp_status", "retired.field": "-"}
        assert transactions >= (3 * customers) // online_ddl.BATCH_ROWS
    finally:
        await database.engine.dispose()


@pytest.mark.postgres
async def test_a_migration_that_cannot_take_its_lock_gives_up_and_writers_go_on(
    postgres_url: str, tmp_path: Path
) -> None:
    """A long transaction reading hubspot_field_state holds a lock 0004's ALTER TABLE must
    wait for. Without a lock_timeout the migration waits for ever, and every writer of the
    table queues behind it. With one, each attempt gives up within the timeout, writers get
    through, and `hubsync migrate` fails naming the revision; once the reader is gone it
    carries on."""
    engine = create_engine(postgres_url, pool_size=3)
    env = {"HUBSYNC_DATABASE_URL": postgres_url, "WARP_CUSTOMERS_TABLE": "x.customers"}
    try:
        await migrate.downgrade(engine, "0003")
        reader = await engine.connect()
        try:
            await reader.execute(text("SELECT count(*) FROM hubspot_field_state"))  # holds it
            assert reader.in_transaction()
            migration = asyncio.create_task(asyncio.to_thread(run, ["migrate"], env, tmp_path))
            longest, writes = 0.0, 0
            while not migration.done():
                started = time.monotonic()
                async with engine.begin() as writer:
                    # Bounded, so that a writer stuck behind the migration fails the test.
                    insert = text(
                        "INSERT INTO hubspot_field_state (warp_customer_id, field) "
                        "VALUES (:c, 'status')"
                    )
                    await asyncio.wait_for(writer.execute(insert, {"c": f"w{writes}"}), 10)
                longest = max(longest, time.monotonic() - started)
                writes += 1
                await asyncio.sleep(0.02)
            result = await migration
        finally:
            await reader.rollback()
            await reader.close()

        assert result.returncode == 4, (result.stdout, result.stderr)
        assert f"revision 0004 could not take a lock within {migrate.LOCK_TIMEOUT}" in (
            result.stderr
        )
        assert "Run `hubsync migrate` again" in result.stderr
        assert await migrate.current_revision(engine) == "0003"
        assert writes > 10
        # A writer waits at most one attempt's lock_timeout (1 s), plus a loaded machine.
        assert longest < 2.5, longest

        again = await asyncio.to_thread(run, ["migrate"], env, tmp_path)
        assert again.returncode == 0, again.stderr
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_build_cut_short_is_repaired_when_the_migration_runs_again(
    postgres_url: str, tmp_path: Path
) -> None:
    """A CONCURRENTLY build that fails leaves an invalid index behind; 0006 drops it first."""
    engine = create_engine(postgres_url)
    env = {"HUBSYNC_DATABASE_URL": postgres_url, "WARP_CUSTOMERS_TABLE": "x.customers"}
    try:
        await migrate.downgrade(engine, "0004")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO hubspot_webhook_events (dedup_key, subscription_type, raw, "
                    "status) SELECT g::text, 'company.propertyChange', '{}', 'done' "
                    "FROM generate_series(1, 3) g"
                )
            )
        autocommit = await (await engine.connect()).execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(Exception, match="could not create unique index"):
            await autocommit.execute(
                text(
                    "CREATE UNIQUE INDEX CONCURRENTLY ix_hubspot_webhook_events_status_id "
                    "ON hubspot_webhook_events (status)"
                )
            )
        await autocommit.close()

        result = await asyncio.to_thread(run, ["migrate"], env, tmp_path)
        assert result.returncode == 0, result.stderr
        async with engine.connect() as connection:
            indexes = (
                await connection.execute(
                    text(
                        "SELECT c.relname, i.indisvalid, i.indisunique FROM pg_index i "
                        "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = ANY(:names)"
                    ),
                    {"names": list(INDEXES_0006)},
                )
            ).all()
        assert sorted(indexes) == sorted((name, True, False) for name in INDEXES_0006)
    finally:
        await engine.dispose()
