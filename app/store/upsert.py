"""INSERT … ON CONFLICT for both dialects hubsync runs on, and many rows in one statement."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import Dialect, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.sql import write_postgres


def insert_for(connection: AsyncConnection, table: Table) -> Any:
    """A dialect insert that offers `on_conflict_do_update` / `on_conflict_do_nothing`."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def insert_rows(
    connection: AsyncConnection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    conflict: tuple[str, ...] = (),
    update: tuple[str, ...] = (),
) -> None:
    """Insert `rows`, and where a row with the same `conflict` columns exists, set its
    `update` columns to the new row's (none: insert only).

    On PostgreSQL this is one statement, whatever the number of rows: the rows go as one JSON
    array and come back out of `json_to_recordset`, typed as the table's columns, so a batch's
    hundred rows cost one round trip and one parameter, encoded in C (orjson), straight through
    asyncpg (`write_postgres`; inside `app.sql.gathered_writes`, gathered with the others): not
    a hundred executions (SQLAlchemy's executemany), nor an array per column, whose every
    element asyncpg checks in Python. SQLite has neither: there it is an executemany."""
    if not rows:
        return
    columns = tuple(dict.fromkeys(chain.from_iterable(rows)))  # a key a row lacks: NULL
    if connection.dialect.name != "postgresql":
        statement = insert_for(connection, table)
        if conflict:
            statement = statement.on_conflict_do_update(
                index_elements=list(conflict),
                set_={c: getattr(statement.excluded, c) for c in update},
            )
        await connection.execute(statement, [{c: row.get(c) for c in columns} for row in rows])
        return
    await write_postgres(
        connection,
        _recordset_insert(connection.dialect, (table, columns, conflict, update)),
        _rows_json(rows),
    )


def _rows_json(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as one JSON array; a naive time is UTC, as asyncpg takes it."""
    try:
        return orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC).decode()
    except TypeError:  # what orjson does not take (an integer past 64 bits): as the stdlib
        return json.dumps(rows, default=_iso)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


# The statement of each (table, columns, conflict, update), built once: a handful per process.
_Shape = tuple[Table, tuple[str, ...], tuple[str, ...], tuple[str, ...]]
_RECORDSET_INSERTS: dict[_Shape, str] = {}


def _recordset_insert(dialect: Dialect, shape: _Shape) -> str:
    if (known := _RECORDSET_INSERTS.get(shape)) is not None:
        return known
    table, columns, conflict, update = shape
    quote = dialect.identifier_preparer.quote
    typed = ", ".join(f"{quote(c)} {table.c[c].type.compile(dialect=dialect)}" for c in columns)
    names = ", ".join(quote(c) for c in columns)
    sql = (
        f"INSERT INTO {quote(table.name)} ({names}) "
        f"SELECT {names} FROM json_to_recordset(CAST($1 AS json)) AS given({typed})"
    )
    if conflict:
        sets = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in update)
        targets = ", ".join(quote(c) for c in conflict)
        sql += f" ON CONFLICT ({targets}) DO " + (f"UPDATE SET {sets}" if sets else "NOTHING")
    _RECORDSET_INSERTS[shape] = sql
    return sql
