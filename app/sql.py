"""SQL shapes shared by hubsync's own store and WARP's connector (both talk to PostgreSQL or
SQLite through SQLAlchemy Core)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ClauseElement, ColumnElement, any_, bindparam, event
from sqlalchemy.dialects.postgresql import ARRAY, asyncpg
from sqlalchemy.exc import DBAPIError
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


_ASYNCPG = asyncpg.dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class PostgresStatement:
    """A Core statement compiled once for asyncpg (`postgres_sql`): its SQL (`$1`, `$2`…),
    and the parameters in that order, with the values the statement binds itself."""

    sql: str
    names: tuple[str, ...]
    bound: dict[str, Any]

    def args(self, **values: Any) -> list[Any]:
        """The positional arguments for `values` given by parameter name."""
        return [values[name] if name in values else self.bound[name] for name in self.names]

    async def fetch(self, connection: AsyncConnection, **values: Any) -> list[Any]:
        """A read, through `fetch_postgres` (no BEGIN of its own)."""
        return await fetch_postgres(connection, self.sql, *self.args(**values))

    async def run(self, connection: AsyncConnection, **values: Any) -> list[Any]:
        """A write, or a locking read, in SQLAlchemy's transaction (`run_postgres`)."""
        return await run_postgres(connection, self.sql, *self.args(**values))

    async def write(self, connection: AsyncConnection, **values: Any) -> None:
        """A write whose answer is not needed (`write_postgres`: gathered where writes are)."""
        await write_postgres(connection, self.sql, *self.args(**values))


def postgres_sql(statement: ClauseElement) -> PostgresStatement:
    """A Core statement for `fetch_postgres` and `run_postgres`: written in Core, compiled once
    (at import) for the hot path on PostgreSQL. Its parameters are named (`bindparam("ids")`,
    `any_param`); `args` orders their values."""
    compiled = statement.compile(dialect=_ASYNCPG)
    if "POSTCOMPILE" in str(compiled):  # an expanding IN: its SQL depends on the values
        raise ValueError(f"not compiled once: an expanding IN in {str(compiled)[:200]!r}")
    names = tuple(getattr(compiled, "positiontup", None) or ())  # a SQLCompiler's
    binds = getattr(compiled, "binds", {})
    bound = {n: v for n, v in compiled.params.items() if n in binds and not binds[n].required}
    return PostgresStatement(str(compiled), names, bound)


def any_param(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """`column = ANY(:name)`, the array typed as `column`'s: the PostgreSQL form of
    `any_of`, with a named parameter, for a statement compiled once (`postgres_sql`)."""
    return column == any_(bindparam(name, type_=ARRAY(column.type)))


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
    _refuse_while_gathering(connection, statement)
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


async def run_postgres(connection: AsyncConnection, statement: str, *params: Any) -> list[Any]:
    """SQL text on PostgreSQL straight through asyncpg, inside the transaction SQLAlchemy holds
    on `connection` (writes included): the statements of a sync batch, where SQLAlchemy's
    execution and result machinery cost two to three times what asyncpg spends on a statement
    (bench/README.md, "Fifth pass"). The rows index like SQLAlchemy's (by position or name).

    The transaction is SQLAlchemy's: one it has begun is used, and where it has not sent BEGIN
    yet (it does so at its first statement), BEGIN is sent now, as its first statement would.
    So the statement commits or rolls back with the rest of the block, as if SQLAlchemy had
    run it. A failure is raised as SQLAlchemy would raise it (a `DBAPIError` wrapping the
    driver's error, the SQLSTATE readable by `app.store.sqlstate`), and a connection found
    closed is invalidated, as SQLAlchemy does."""
    _refuse_while_gathering(connection, statement)
    if not connection.in_transaction():
        await connection.begin()  # what SQLAlchemy's autobegin does at its first statement
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    try:
        if adapted._transaction is None:  # SQLAlchemy begins it lazily, at its first statement
            await adapted._start_transaction()
        rows: list[Any] = await adapted.driver_connection.fetch(statement, *params)
    except Exception as error:  # translated, as SQLAlchemy would
        raise await _as_sqlalchemy_error(connection, adapted, statement, params, error) from error
    return rows


async def fetch_under_lock(
    connection: AsyncConnection, lock_key: int, statement: str, *params: Any
) -> list[Any]:
    """The rows of `statement`, run in a transaction of its own that first takes the advisory
    lock `lock_key` (`pg_advisory_xact_lock`, held until it commits), on an autocommit
    `connection` (`each_statement_committed`), straight through asyncpg: BEGIN and the lock go
    as one message, so it costs three round trips (that, the statement, COMMIT) where
    SQLAlchemy's transaction takes four. The statement runs after the lock is granted, so it
    sees whatever the previous holder committed (READ COMMITTED: a snapshot per statement).

    A failure is raised as `run_postgres` raises it. The transaction is never left open on a
    connection going back to the pool: it is rolled back, or, where that cannot be done (the
    connection broke, the caller was cancelled), the connection is closed."""
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    driver = adapted.driver_connection
    try:
        await driver.execute(
            f"BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({int(lock_key)})"
        )
        rows: list[Any] = await driver.fetch(statement, *params)
        await driver.execute("COMMIT")
    except Exception as error:
        try:
            if driver.is_in_transaction():
                await driver.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 -- the connection is gone: it is closed below
            await connection.invalidate()
        raise await _as_sqlalchemy_error(connection, adapted, statement, params, error) from error
    except BaseException:  # cancelled mid-way: no ROLLBACK can be awaited reliably now
        await connection.invalidate()
        raise
    return rows


async def _as_sqlalchemy_error(
    connection: AsyncConnection, adapted: Any, statement: str, params: Any, error: Exception
) -> Exception:
    try:
        adapted._handle_exception(error)  # raises the DB-API form of `error`
    except Exception as translated:  # noqa: BLE001 -- whatever SQLAlchemy made of it
        dialect = connection.dialect
        if not isinstance(translated, dialect.loaded_dbapi.Error):
            return translated  # not the database's: raised as it is
        closed = dialect.is_disconnect(translated, adapted, None)
        if closed:
            await connection.invalidate()
        return DBAPIError.instance(
            statement,
            params,
            translated,
            dialect.loaded_dbapi.Error,
            hide_parameters=connection.sync_engine.hide_parameters,
            connection_invalidated=closed,
            dialect=dialect,
        )
    return error


# -- writes gathered into one statement --------------------------------------------------------

_GATHERING = "hubsync.gathered_writes"  # the key in a connection's `info` while writes gather
_WRITE_TARGET = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\S+)", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\$(\d+)")


class StatementNotGathered(Exception):  # noqa: N818 -- a signal to the caller, not a failure
    """A statement that cannot join the writes being gathered on a connection (one whose
    answer is needed, or a second write to a table already written): refused before it
    reached the database, so the caller can do the whole work the ordinary way."""


@dataclass
class GatheredWrites:
    """The writes (SQL with `$n` parameters, and their values) a block left to be sent
    together; see `gathered_writes`."""

    statements: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)

    def add(self, statement: str, params: tuple[Any, ...]) -> None:
        target = _WRITE_TARGET.match(statement)
        if target is None:
            raise StatementNotGathered(f"not a plain write: {statement[:80]!r}")
        # Each part of one statement sees the same snapshot: a second write to a table would
        # not see the first's rows. Such work runs the ordinary way, one statement each.
        table = target.group(1).lower()
        if table in self.tables:
            raise StatementNotGathered(f"a second write to {table} in one statement")
        self.tables.add(table)
        self.statements.append((statement, params))

    def with_writes(
        self, head: Sequence[tuple[str, str, Sequence[Any]]], final: str
    ) -> tuple[str, list[Any]]:
        """One statement: `head`'s named queries (name, SQL, values), then each gathered write
        as a part of the same WITH, then `final` (which reads `head`'s names; its `$n` come
        after every part's). PostgreSQL runs every data-modifying part of a WITH to the end,
        whatever `final` reads, and the whole as one statement: all or nothing."""
        parts: list[str] = []
        values: list[Any] = []
        named = [*head, *((f"gathered_{i}", sql, p) for i, (sql, p) in enumerate(self.statements))]
        for name, sql, params in named:
            parts.append(f"{name} AS ({_shifted(sql, len(values), len(params))})")
            values.extend(params)
        return f"WITH {', '.join(parts)} {_shifted(final, len(values), None)}", values


def _shifted(sql: str, by: int, count: int | None) -> str:
    """`sql` with its parameters `$1`… renumbered from `by + 1` (`count`: how many it takes,
    checked)."""
    numbers = {int(n) for n in _PLACEHOLDER.findall(sql)}
    if count is not None and numbers != set(range(1, count + 1)):
        raise ValueError(f"{sql[:80]!r} takes ${sorted(numbers)}, given {count} values")
    return _PLACEHOLDER.sub(lambda m: f"${int(m.group(1)) + by}", sql) if by else sql


@asynccontextmanager
async def gathered_writes(connection: AsyncConnection) -> AsyncIterator[GatheredWrites]:
    """While the block runs, `write_postgres` on `connection` (PostgreSQL) gathers its write
    instead of sending it, for the caller to send them all in one statement
    (`GatheredWrites.with_writes`): one round trip for a batch's records where there were a
    BEGIN, a statement per table and a COMMIT. Any other statement on `connection` meanwhile
    (SQLAlchemy's, `run_postgres`, `fetch_postgres`) raises `StatementNotGathered` before it
    is sent: nothing reaches the database until the caller sends the gathered writes."""
    sync_connection = connection.sync_connection
    assert sync_connection is not None  # noqa: S101 -- opened by `connect()`
    gathered = GatheredWrites()
    sync_connection.info[_GATHERING] = gathered

    def refuse(*args: Any) -> None:
        raise StatementNotGathered(f"a statement while writes are gathered: {args[2][:80]!r}")

    event.listen(sync_connection, "before_cursor_execute", refuse)
    try:
        yield gathered
    finally:
        event.remove(sync_connection, "before_cursor_execute", refuse)
        del sync_connection.info[_GATHERING]


async def write_postgres(connection: AsyncConnection, statement: str, *params: Any) -> None:
    """`run_postgres` for a write whose answer is not needed, or, inside `gathered_writes`,
    the write kept to be sent with the others."""
    sync_connection = connection.sync_connection
    gathered = None if sync_connection is None else sync_connection.info.get(_GATHERING)
    if gathered is None:
        await run_postgres(connection, statement, *params)
    else:
        gathered.add(statement, params)


def _refuse_while_gathering(connection: AsyncConnection, statement: str) -> None:
    sync_connection = connection.sync_connection
    if sync_connection is not None and _GATHERING in sync_connection.info:
        raise StatementNotGathered(f"a statement while writes are gathered: {statement[:80]!r}")
