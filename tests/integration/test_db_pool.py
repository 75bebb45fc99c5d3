"""The PostgreSQL pool without `pool_pre_ping`: a connection that sat idle is checked before
use, so one the server closed meanwhile (a restart, an idle timeout) is replaced, not used."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import event, text

from app.main import open_context
from app.settings import Settings
from app.store.db import create_engine
from tests.conftest import _libpq


def terminate_other_sessions(url: str) -> int:
    with psycopg.connect(_libpq(url), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


@pytest.mark.postgres
async def test_an_idle_connection_closed_by_the_server_is_replaced(postgres_url: str) -> None:
    # idle_ping_seconds=0: ping at every checkout, so the test need not wait out the idle time
    engine = create_engine(postgres_url, pool_size=1, idle_ping_seconds=0.0)
    try:
        async with engine.connect() as connection:
            first_pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
        assert terminate_other_sessions(postgres_url) == 1  # the pooled one
        async with engine.connect() as connection:
            second_pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
        assert second_pid != first_pid
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_the_services_pool_keeps_a_connection_for_every_worker_lane(
    postgres_url: str,
) -> None:
    """Every lane of the worker (16 by default on PostgreSQL) checks a connection out at once
    at a backlog's peaks, beside the API, the heartbeats and the rate limiter. A pool smaller
    than that closes what it opened past its size at every check-in, and opens it again at
    the next peak: a backend started, asyncpg's type introspection and every statement
    prepared anew (15 times in a 10-second mass change: bench/README.md, "Third pass")."""
    settings = Settings.from_mapping(
        {"HUBSYNC_DATABASE_URL": postgres_url, "HUBSPOT_ACCESS_TOKEN": "pat-test"}
    )
    lanes = settings.effective_worker_concurrency
    context = open_context(settings, None)
    opened = 0

    def count(*_: object) -> None:
        nonlocal opened
        opened += 1

    event.listen(context.engine.sync_engine.pool, "connect", count)
    peak = lanes + 2  # every lane at once, and a heartbeat and a grant beside them

    async def hold() -> None:
        async with context.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            await asyncio.sleep(0.05)

    try:
        for _ in range(3):  # three peaks of a backlog
            await asyncio.gather(*(hold() for _ in range(peak)))
        assert opened == peak  # opened at the first peak, kept for the next ones
    finally:
        await context.engine.dispose()
