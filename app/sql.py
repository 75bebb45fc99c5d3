"""SQL shapes shared by hubsync's own store and WARP's connector (both talk to PostgreSQL or
SQLite through SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection


def any_of(connection: AsyncConnection, column: ColumnElement[Any], values: Iterable[Any]) -> Any:
    """`column IN values`, written for the hot paths: on PostgreSQL `column = ANY(:array)`,
    one parameter however many values, so the statement's text (and asyncpg's prepared
    statement, and SQLAlchemy's compiled form) is the same for every batch; an expanding
    `IN (...)` renders, and the server plans, a new statement per list length. SQLite has no
    arrays: there it stays `IN`."""
    listed = list(values)
    if connection.dialect.name == "postgresql":
        return column == any_(bindparam(None, listed, type_=ARRAY(column.type)))
    return column.in_(listed)


async def fetch_postgres(connection: AsyncConnection, statement: str, *params: Any) -> list[Any]:
    """The rows of SQL text on PostgreSQL, straight through asyncpg, for the hottest statements
    (the webhook intake's two per group, a batch's field memory): SQLAlchemy's cursor and result
    cost ~0.1 ms of CPU per statement, several times what asyncpg spends (bench/README.md). The
    rows index like SQLAlchemy's. Only on an autocommit connection, or for reads: SQLAlchemy
    does not hear of the statement, so it begins no transaction for it (nor has one begun
    before its first own statement on the connection).

    Failures outside a transaction stay SQLAlchemy's: a statement that fails is run once more
    through SQLAlchemy, which raises its own `DBAPIError` (and invalidates a broken connection,
    so that callers retrying on `connection_invalidated` still do). A statement that failed had
    no effect, so running it again is safe: it fails the same way, or (a transient failure)
    succeeds. Inside a transaction the failure has aborted it, and a second run would only say
    "current transaction is aborted": the driver's own error is raised, which says why."""
    sync_connection = connection.sync_connection
    driver = None if sync_connection is None else sync_connection.connection.driver_connection
    if driver is None:  # not open: SQLAlchemy says why
        result: Any = await connection.exec_driver_sql(statement, params)
        return list(result)
    try:
        rows: list[Any] = await driver.fetch(statement, *params)
    except Exception:
        if driver.is_in_transaction():
            raise
        result = await connection.exec_driver_sql(statement, params)
        return list(result)
    return rows
