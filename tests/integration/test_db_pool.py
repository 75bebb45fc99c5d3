"""The PostgreSQL pool without `pool_pre_ping`: a connection that sat idle is checked before
use, so one the server closed meanwhile (a restart, an idle timeout) is replaced, not used."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

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
