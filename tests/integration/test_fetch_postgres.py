"""`app.sql.fetch_postgres` and `app.sql.run_postgres` go to asyncpg directly, but fail as
SQLAlchemy would: the webhook intake's retry and split rules, and the queue's retry on a
deadlock, read SQLAlchemy's errors. `run_postgres` writes inside SQLAlchemy's transaction:
its statements commit and roll back with the block's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.sql import fetch_postgres, run_postgres
from app.store.db import create_engine
from app.store.sqlstate import sqlstate_of
from tests.conftest import _libpq

pytestmark = pytest.mark.postgres


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    yield engine
    await engine.dispose()


async def test_rows_index_as_sqlalchemy_rows(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        rows = await fetch_postgres(connection, "SELECT $1::text, $2::int", "a", 2)
    assert [(row[0], row[1]) for row in rows] == [("a", 2)]


async def test_a_refused_statement_is_sqlalchemy_s_error(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("CREATE TABLE one (id int PRIMARY KEY)")
        await fetch_postgres(autocommit, "INSERT INTO one VALUES ($1) RETURNING id", 1)
        with pytest.raises(IntegrityError):
            await fetch_postgres(autocommit, "INSERT INTO one VALUES ($1) RETURNING id", 1)
        rows = await fetch_postgres(autocommit, "SELECT count(*) FROM one")
    assert rows[0][0] == 1  # the failed statement had no effect, run twice or not


async def test_a_failure_inside_a_transaction_says_why(engine: AsyncEngine) -> None:
    # A batch's field memory is read on a connection SQLAlchemy has begun a transaction on: a
    # failed read aborted it, and running it again would only report "transaction is aborted".
    async with engine.connect() as connection:
        await connection.exec_driver_sql("SELECT 1")  # SQLAlchemy begins its transaction
        with pytest.raises(Exception, match="division by zero") as raised:
            await fetch_postgres(connection, "SELECT 1 / $1::int", 0)
        await connection.rollback()
    assert "aborted" not in str(raised.value)


async def _table(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.exec_driver_sql("CREATE TABLE one (id int PRIMARY KEY)")


async def _ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        return [
            row[0] for row in await fetch_postgres(connection, "SELECT id FROM one ORDER BY id")
        ]


async def test_run_postgres_commits_and_rolls_back_with_sqlalchemy_s_transaction(
    engine: AsyncEngine,
) -> None:
    await _table(engine)
    async with engine.begin() as connection:  # the driver's statement first: BEGIN is sent
        await run_postgres(connection, "INSERT INTO one VALUES ($1)", 1)
        await connection.exec_driver_sql("INSERT INTO one VALUES (2)")
    async with engine.connect() as connection, connection.begin() as transaction:
        await connection.exec_driver_sql("INSERT INTO one VALUES (3)")
        await run_postgres(connection, "INSERT INTO one VALUES ($1)", 4)
        await transaction.rollback()
    async with engine.connect() as connection:  # autobegin, as SQLAlchemy's: no commit, none
        await run_postgres(connection, "INSERT INTO one VALUES ($1)", 5)
    async with engine.connect() as connection:
        await run_postgres(connection, "INSERT INTO one VALUES ($1)", 6)
        await connection.commit()
    assert await _ids(engine) == [1, 2, 6]


async def test_run_postgres_fails_as_sqlalchemy_would(engine: AsyncEngine) -> None:
    await _table(engine)
    with pytest.raises(IntegrityError) as raised:
        async with engine.begin() as connection:
            await run_postgres(connection, "INSERT INTO one VALUES ($1), ($1)", 1)
    assert sqlstate_of(raised.value) == "23505"
    assert not raised.value.connection_invalidated
    assert await _ids(engine) == []


@pytest.mark.parametrize("run", [fetch_postgres, run_postgres])
async def test_a_broken_connection_is_invalidated_as_sqlalchemy_does(
    engine: AsyncEngine, postgres_url: str, run: Any
) -> None:
    async with engine.connect() as connection:
        await run(connection, "SELECT 1")
        await connection.rollback()
        with psycopg.connect(_libpq(postgres_url), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(DBAPIError) as raised:
            await run(connection, "SELECT 1")
    assert raised.value.connection_invalidated
    async with engine.begin() as connection:  # the pool hands out a fresh one
        assert (await run(connection, "SELECT 1"))[0][0] == 1


async def test_a_statement_cancelled_mid_flight_leaves_the_pool_usable(postgres_url: str) -> None:
    """A worker's batch is cancelled when its lease is lost or the process stops, at any
    await: also inside `run_postgres`, where SQLAlchemy does not see the statement. The
    connection goes back to the pool, and the next user of that very connection (a pool of
    one) gets an answer, not a hang or "another operation is in progress"."""
    engine = create_engine(postgres_url, pool_size=1)
    try:
        for _ in range(3):

            async def slow() -> None:
                async with engine.begin() as connection:
                    await run_postgres(connection, "SELECT 1")  # BEGIN sent
                    await run_postgres(connection, "SELECT pg_sleep(5)")

            task = asyncio.create_task(slow())
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with asyncio.timeout(10):
                async with engine.begin() as connection:
                    rows = await run_postgres(connection, "SELECT 41 + $1::int", 1)
                    assert rows[0][0] == 42
                    # and SQLAlchemy's own path, on the same connection
                    assert (await connection.exec_driver_sql("SELECT 7")).scalar() == 7
    finally:
        await engine.dispose()
