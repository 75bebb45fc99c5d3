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
