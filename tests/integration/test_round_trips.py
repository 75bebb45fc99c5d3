"""The statements of every batch that take a round trip to PostgreSQL each, counted as the
server receives them (asyncpg's query log): a rate-limit grant and its settle are one
statement each, a batch whose jobs are all done is completed in one, and a batch's records
are written in one. Each had been a BEGIN, two to six statements and a COMMIT, paid for by
the worker's CPU and the database's on every batch (bench/README.md, "Eighth pass" and
"Ninth pass"). And the gathering those records go through (`app.sql.gathered_writes`) sends
nothing it cannot send whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from app.hubspot.ratelimit import create_rate_limiter
from app.settings import RateLimit
from app.sql import (
    StatementNotGathered,
    fetch_postgres,
    fetch_under_lock,
    gathered_writes,
    write_postgres,
)
from app.store.db import create_engine, each_statement_committed
from app.sync.core.jobs import JobOutcome, OutcomeStatus
from tests.conftest import Database
from tests.integration.queue_support import enqueue, job, make_queue
from tests.syncenv import sync_env

pytestmark = pytest.mark.postgres


@pytest.fixture
async def postgres_db(postgres_url: str) -> AsyncIterator[Database]:
    engine = create_engine(postgres_url, pool_size=5)
    try:
        yield Database("postgresql", postgres_url, engine, "accounts.customers")
    finally:
        await engine.dispose()


@asynccontextmanager
async def statements_sent(db: Database) -> AsyncIterator[list[str]]:
    """Every statement the engine's connections send while the block runs, whichever pooled
    connection sends it: what goes straight through asyncpg (BEGIN and COMMIT included), from
    asyncpg's query log, and what SQLAlchemy executes (prepared, which that log leaves out)."""
    sent: list[str] = []
    drivers: list[Any] = []

    def log(query: Any) -> None:
        sent.append(" ".join(query.query.split()))

    def checked_out(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        driver.add_query_logger(log)
        drivers.append(driver)

    def executed(*args: Any) -> None:
        log(SimpleNamespace(query=args[2]))  # (connection, cursor, statement, ...)

    event.listen(db.engine.sync_engine, "checkout", checked_out)
    event.listen(db.engine.sync_engine, "before_cursor_execute", executed)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", executed)
        event.remove(db.engine.sync_engine, "checkout", checked_out)
        for driver in drivers:
            driver.remove_query_logger(log)


async def test_a_grant_and_its_settle_are_one_statement_each(postgres_db: Database) -> None:
    db = postgres_db
    limiter = create_rate_limiter(db.engine, RateLimit(10, 10.0))
    async with statements_sent(db) as sent:
        grant = await limiter.acquire()
        assert [s.split("(")[0] for s in sent] == ["SELECT * FROM hubsync_rate_limit_grant"]
        await limiter.settle(grant)
    assert len(sent) == 2, sent
    assert sent[1].startswith("UPDATE hubspot_rate_limit_grants SET granted_at")
    async with db.engine.connect() as connection:
        count = (
            await connection.execute(text("SELECT count(*) FROM hubspot_rate_limit_grants"))
        ).scalar_one()
    assert count == 1  # granted once, and committed: another transaction sees it


async def test_a_batch_all_done_is_completed_in_one_statement(postgres_db: Database) -> None:
    db = postgres_db
    queue = make_queue(db.engine)
    ids = [(await enqueue(queue, f"c{n}"))[0] for n in range(4)]
    for size in (1, 3):  # the first: the connection learns the statement's types
        claimed = await queue.claim("lane", size, 30)
        outcomes = [JobOutcome(job.id, OutcomeStatus.DONE) for job in claimed]
        async with statements_sent(db) as sent:
            claims = {job.id: job.claim for job in claimed}
            summary = await queue.complete("lane", outcomes, claims=claims)
    assert summary.done == 3
    assert len(sent) == 1, sent
    assert sent[0].startswith("WITH held AS")
    assert {(await job(queue, job_id)).state for job_id in ids} == {"done"}


async def test_a_batch_of_warp_owned_changes_is_recorded_in_one_statement(
    postgres_db: Database,
) -> None:
    """A worker's batch of queued jobs: the engine's reads, its fence before HubSpot's write
    (with the pauses in force, one statement), and its writes that stand alone (the WARP
    values first seen) run each in its own transaction; the records (field state, conflicts,
    links, the log) go in one statement that fences again, its rows locked until it commits:
    no BEGIN at all."""
    queue = make_queue(postgres_db.engine)
    async with sync_env(postgres_db) as env:
        customers = [await env.add_customer() for _ in range(3)]
        await env.sync(*customers)
        for balance in ("99", "98"):  # the first round: the connections learn the types
            for customer_id in customers:
                await env.warp.write_fields(customer_id, {"current_balance": Decimal(balance)})
                await enqueue(queue, customer_id)
            claimed = await queue.claim("lane", 3, 30)
            env.hubspot.forget()
            async with statements_sent(postgres_db) as sent:
                outcomes = await env.engine(claimed)
            summary = await queue.complete(
                "lane", outcomes, claims={j.id: j.claim for j in claimed}
            )
        async with postgres_db.engine.connect() as connection:
            remembered = (
                await connection.execute(
                    text(
                        "SELECT hubspot_value FROM hubspot_field_state"
                        " WHERE field = 'current_balance' AND warp_customer_id = ANY(:ids)"
                    ),
                    {"ids": customers},
                )
            ).scalars()
            logged = (
                await connection.execute(
                    text("SELECT count(*) FROM hubspot_sync_log WHERE job_id = ANY(:ids)"),
                    {"ids": [j.id for j in claimed]},
                )
            ).scalar_one()
    assert [o.result["outcome"] for o in outcomes if o.result] == ["updated"] * 3
    assert summary.done == 3
    assert len(env.hubspot.updates) == 1
    assert env.hubspot.reads == []
    assert not [s for s in sent if s.startswith(("BEGIN", "COMMIT"))], sent
    fence = "SELECT hubspot_sync_queue.id, hubspot_sync_queue.claim"
    [fenced] = [s for s in sent if s.startswith(fence)]  # before HubSpot's write
    assert "hubsync_paused_directions" in fenced  # the pauses read in the same statement
    assert not [s for s in sent if s.startswith("SELECT hubsync_paused_directions")]
    [recorded] = [s for s in sent if s.startswith("WITH held AS")]
    assert recorded == sent[-1]
    for write in (
        "INSERT INTO hubspot_field_state",
        "UPDATE hubspot_conflicts",
        "UPDATE hubspot_entity_links",
        "INSERT INTO hubspot_sync_log",
    ):
        assert write in recorded
    assert set(remembered) == {"98"}
    assert logged == 3


async def test_gathered_writes_go_in_one_statement_and_refuse_what_would_not(
    postgres_db: Database,
) -> None:
    """While writes gather, any statement whose answer is needed, and a second write to one
    table, is refused before it reaches the database; the writes gathered are sent as one
    statement, their parameters renumbered, all or nothing."""
    engine = postgres_db.engine
    async with (
        statements_sent(postgres_db) as sent,
        each_statement_committed(engine) as connection,
    ):
        await connection.execute(text("CREATE TEMP TABLE gathered_a (k int, v text)"))
        await connection.execute(text("CREATE TEMP TABLE gathered_b (k int, v text)"))
        sent_before = len(sent)
        async with gathered_writes(connection) as writes:
            await write_postgres(
                connection, "INSERT INTO gathered_a (k, v) VALUES ($1, $2)", 1, "one"
            )
            await write_postgres(
                connection, "INSERT INTO gathered_b (k, v) VALUES ($1, $2)", 2, "two"
            )
            with pytest.raises(StatementNotGathered):
                await write_postgres(connection, "UPDATE gathered_a SET v = $1", "again")
            with pytest.raises(StatementNotGathered):
                await connection.execute(text("SELECT 1"))
            with pytest.raises(StatementNotGathered):
                await fetch_postgres(connection, "SELECT 1")
        await asyncio.sleep(0)
        assert len(sent) == sent_before  # nothing was sent while they gathered
        statement, values = writes.with_writes(
            [("given", "SELECT $1::int AS n", [7])], "SELECT n FROM given"
        )
        [row] = await fetch_postgres(connection, statement, *values)
        await asyncio.sleep(0)  # asyncpg calls its query loggers soon after, not at once
        assert row[0] == 7
        assert sent[sent_before:] == [" ".join(statement.split())]
        assert "VALUES ($2, $3)" in statement
        assert "VALUES ($4, $5)" in statement
        rows = (
            await connection.execute(
                text("SELECT 'a', k, v FROM gathered_a UNION ALL SELECT 'b', k, v FROM gathered_b")
            )
        ).all()
        assert sorted(tuple(r) for r in rows) == [("a", 1, "one"), ("b", 2, "two")]
        # All or nothing: a final part that fails leaves no gathered write made.
        async with gathered_writes(connection) as writes:
            await write_postgres(
                connection, "INSERT INTO gathered_a (k, v) VALUES ($1, $2)", 3, "x"
            )
        statement, values = writes.with_writes([], "SELECT CAST('not a number' AS INTEGER)")
        with pytest.raises(DBAPIError):
            await fetch_postgres(connection, statement, *values)
        count = (await connection.execute(text("SELECT count(*) FROM gathered_a"))).scalar_one()
        assert count == 1
        await connection.execute(text("DROP TABLE gathered_a, gathered_b"))


async def test_a_claim_is_three_round_trips(postgres_db: Database) -> None:
    """BEGIN and the claim's lock go as one message, then the claim, then COMMIT."""
    queue = make_queue(postgres_db.engine)
    for key in ("a", "b", "c"):
        await enqueue(queue, key)
    await queue.claim("warm-up", 1, 30)  # the connection learns the statement's types
    async with statements_sent(postgres_db) as sent:
        claimed = await queue.claim("lane", 5, 30)
        await asyncio.sleep(0)
    assert sorted(j.entity_key for j in claimed) == ["b", "c"]
    assert len(sent) == 3, sent
    assert sent[0] == (
        "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(7462157061729534320)"
    )
    assert sent[1].startswith("WITH picked AS")
    assert sent[2] == "COMMIT"


LOCK = 4242


async def test_a_statement_that_fails_under_the_lock_leaves_no_transaction_open(
    postgres_db: Database,
) -> None:
    engine = postgres_db.engine
    async with each_statement_committed(engine) as connection:
        with pytest.raises(DBAPIError, match="division by zero"):
            await fetch_under_lock(connection, LOCK, "SELECT 1 / $1::int", 0)
        driver = (await connection.get_raw_connection()).dbapi_connection.driver_connection
        assert not driver.is_in_transaction()
        assert await fetch_under_lock(connection, LOCK, "SELECT $1::int", 7) == [(7,)]
    async with engine.connect() as other:  # nobody holds the lock now
        free = await other.scalar(text(f"SELECT pg_try_advisory_lock({LOCK})"))
        await other.execute(text(f"SELECT pg_advisory_unlock({LOCK})"))
    assert free is True


async def test_a_claim_cancelled_while_it_waits_for_the_lock_closes_its_connection(
    postgres_db: Database,
) -> None:
    """Cancelled mid-way, the transaction cannot be rolled back for sure: the connection is
    closed rather than put back in the pool with a transaction open."""
    engine = postgres_db.engine
    async with engine.connect() as holder:
        await holder.execute(text(f"SELECT pg_advisory_xact_lock({LOCK})"))  # held until rollback
        async with each_statement_committed(engine) as connection:
            waiting = asyncio.create_task(fetch_under_lock(connection, LOCK, "SELECT $1::int", 1))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # in line for the lock
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert connection.invalidated
        await holder.rollback()
    async with engine.connect() as other:
        free = await other.scalar(text(f"SELECT pg_try_advisory_lock({LOCK})"))
        await other.execute(text(f"SELECT pg_advisory_unlock({LOCK})"))
    assert free is True
