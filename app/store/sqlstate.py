"""What a database error means for the caller, read from its SQLSTATE rather than its text.

Two families matter beyond "a bug": PostgreSQL aborting a transaction to break a deadlock
(`40P01`) or a serialization failure (`40001`), which mean "run the whole transaction
again"; and the server refusing or dropping connections (`08xxx` connection exceptions,
`57P01`/`57P02` shutdown, `57P03` "the database system is starting up"), which mean "the
database is unavailable". asyncpg raises these as plain `PostgresError`s that SQLAlchemy wraps
in a generic `DBAPIError` (not an `OperationalError`), so the class alone cannot tell.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

RETRY_TRANSACTION = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
CANNOT_CONNECT = frozenset({"57P01", "57P02", "57P03"})  # admin/crash shutdown, starting up


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error, wrapped by SQLAlchemy or not (asyncpg and psycopg both
    name it `sqlstate`)."""
    error: BaseException | None = exc.orig if isinstance(exc, DBAPIError) else exc
    seen = 0
    while error is not None and seen < 5:  # SQLAlchemy's adapters chain the driver's error
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(state, str) and state:
            return state
        error = error.__cause__
        seen += 1
    return None


def must_retry_transaction(exc: BaseException) -> bool:
    """PostgreSQL rolled the transaction back to break a deadlock or keep it serializable."""
    return sqlstate_of(exc) in RETRY_TRANSACTION


def cannot_connect(exc: BaseException) -> bool:
    """The server refused or dropped the connection: starting up, shutting down, or gone."""
    state = sqlstate_of(exc)
    return state is not None and (state.startswith("08") or state in CANNOT_CONNECT)
