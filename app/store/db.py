"""Engines for hubsync's database (and WARP's, which may be the same one)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

# A pooled connection idle for longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 10.0
# Connections opened past the pool's size at a peak, closed again when they come back.
OVERFLOW = 10
# Beside one per worker lane: the API's requests, the lease heartbeats, the rate limiter.
SERVICE_CONNECTIONS = 4
_CHECKED_IN_AT = "hubsync_checked_in_at"


def pool_size_for(lanes: int) -> int:
    """Connections kept open for a process whose worker runs up to `lanes` batches at once:
    one per lane, and a few for the rest. A smaller pool closes what it opened past its size
    at every check-in and opens it again at the next peak of a backlog — a backend started,
    asyncpg's type introspection, every statement prepared anew: with 16 lanes and a pool of
    10, 15 connections in a 10-second mass change (bench/README.md, "Third pass")."""
    return lanes + SERVICE_CONNECTIONS


def create_engine(
    url: str, *, pool_size: int = 10, idle_ping_seconds: float = IDLE_PING_SECONDS
) -> AsyncEngine:
    """An async engine tuned per dialect: SQLite in WAL mode with a busy timeout, so the
    worker and the web requests of one process can share the file."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Not `pool_pre_ping`: on asyncpg it is three round trips (BEGIN, a query, ROLLBACK) on
    # every checkout, a third of a webhook delivery's database time. Instead a connection is
    # pinged only when it sat idle in the pool (where a restart, a failover or an idle
    # timeout can have closed it unnoticed); one in steady use is known alive. A connection
    # that breaks in use raises a disconnect error, on which SQLAlchemy invalidates the
    # whole pool, so only operations already in flight see it; the webhook intake retries
    # once on such an error (app/sync/intake/writer.py). `pool_recycle` bounds any
    # connection's age besides.
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=OVERFLOW,
        pool_recycle=1800,
        json_deserializer=json_loads,  # WARP's JSON documents, a batch's hundred: orjson
    )
    event.listen(engine.sync_engine.pool, "checkin", _note_checkin)
    event.listen(engine.sync_engine.pool, "checkout", _idle_pinger(idle_ping_seconds))
    return engine


def json_loads(text: str) -> Any:
    """JSON from PostgreSQL's `json`/`jsonb` columns, through orjson; through the standard
    library where a run of 20 digits may be an integer past 64 bits (orjson would read it as a
    float, losing digits) and where orjson refuses the text."""
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


_LONG_DIGITS = re.compile(r"\d{20}")


def _note_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


def _idle_pinger(idle_seconds: float) -> Callable[..., None]:
    def ping_if_idle(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_seconds:
            return  # just connected, or in steady use
        try:
            dbapi_connection.ping()
        except Exception as exc:
            # The pool's documented signal: discard this connection and check out another.
            raise DisconnectionError("an idle pooled connection was found closed") from exc

    return ping_if_idle


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


@asynccontextmanager
async def each_statement_committed(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads and single-statement writes that need not be atomic together.
    On PostgreSQL each statement is its own transaction (autocommit): no BEGIN and no COMMIT,
    two round trips fewer, which a sync batch pays several times. On SQLite a transaction
    as usual: there a statement of many rows is an executemany, which would commit per row."""
    if not is_postgres(engine):
        async with engine.begin() as connection:
            yield connection
        return
    async with engine.connect() as connection:
        yield await connection.execution_options(isolation_level="AUTOCOMMIT")
