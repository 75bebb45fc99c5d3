"""Alembic environment: runs on a connection handed over by `app.store.migrate`, or on
HUBSYNC_DATABASE_URL when called as `alembic upgrade head` from the repository root."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.settings import Settings
from app.store.migrate import LOCK_TIMEOUT, include_object
from app.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_on_connection(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        set_lock_timeout()
        context.run_migrations()


def set_lock_timeout() -> None:
    """For the whole migration session, every revision and its autocommit blocks: a statement
    that waits longer than LOCK_TIMEOUT for a lock fails (and the revision with it) instead of
    queueing every writer of the table behind it."""
    if context.get_context().dialect.name == "postgresql":
        context.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")


async def run_from_settings() -> None:
    url = Settings.from_env().database_url.reveal()
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run_on_connection)
        await connection.commit()
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run_on_connection(connection)
elif context.is_offline_mode():
    context.configure(
        url=Settings.from_env().database_url.reveal(),
        target_metadata=target_metadata,
        literal_binds=True,
        transaction_per_migration=True,  # as online: each revision's BEGIN ... COMMIT
    )
    with context.begin_transaction():
        set_lock_timeout()
        context.run_migrations()
else:
    asyncio.run(run_from_settings())
