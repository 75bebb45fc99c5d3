"""INSERT … ON CONFLICT for both dialects hubsync runs on, and many rows in one statement."""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import JSON, Dialect, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.sql import run_postgres


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

    On PostgreSQL this is one statement, whatever the number of rows: each column goes as one
    array and the rows come back out of `unnest`, so a batch's hundred rows cost one round
    trip and one bind, not a hundred executions with a hundred parameter sets converted one by
    one (SQLAlchemy's executemany), and straight through asyncpg (`run_postgres`). SQLite has
    no arrays: there it is an executemany."""
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
    jsons = {c for c in columns if isinstance(table.c[c].type, JSON)}
    await run_postgres(
        connection,
        _unnest_insert(connection.dialect, (table, columns, conflict, update)),
        *(
            [_json(row.get(c)) for row in rows] if c in jsons else [row.get(c) for row in rows]
            for c in columns
        ),
    )


def _json(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()  # a batch's hundred log rows: a tenth of the CPU
    except TypeError:  # what orjson does not take (an integer past 64 bits): as the stdlib
        return json.dumps(value)


# The statement of each (table, columns, conflict, update), built once: a handful per process.
_Shape = tuple[Table, tuple[str, ...], tuple[str, ...], tuple[str, ...]]
_UNNEST_INSERTS: dict[_Shape, str] = {}


def _unnest_insert(dialect: Dialect, shape: _Shape) -> str:
    if (known := _UNNEST_INSERTS.get(shape)) is not None:
        return known
    table, columns, conflict, update = shape
    quote = dialect.identifier_preparer.quote
    arrays = ", ".join(
        f"CAST(${i} AS {table.c[c].type.compile(dialect=dialect)}[])"
        for i, c in enumerate(columns, start=1)
    )
    names = ", ".join(quote(c) for c in columns)
    sql = (
        f"INSERT INTO {quote(table.name)} ({names}) "
        f"SELECT * FROM unnest({arrays}) AS given({names})"
    )
    if conflict:
        sets = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in update)
        targets = ", ".join(quote(c) for c in conflict)
        sql += f" ON CONFLICT ({targets}) DO " + (f"UPDATE SET {sets}" if sets else "NOTHING")
    _UNNEST_INSERTS[shape] = sql
    return sql
