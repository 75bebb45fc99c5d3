"""Stored answers for POSTs that carry an `Idempotency-Key` (`hubspot_idempotency_keys`).

The first request with a key reserves it (a row without an answer); its answer is recorded in
the same transaction as its effect, so "the job was queued" and "the answer says so" commit
together. A repeat with the same request gets the stored answer; a repeat with a different
request is refused; a repeat while the first is still in flight is told to wait. A
reservation whose request died without answering expires after `in_flight_timeout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.errors import HubsyncError
from app.store.models import IdempotencyKey, table_of
from app.store.queue.maintenance import database_now

KEYS = table_of(IdempotencyKey)


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    body: dict[str, Any]


class IdempotencyMismatchError(HubsyncError):
    """The key was used before for a different request."""


class IdempotencyInFlightError(HubsyncError):
    """The first request with this key has not finished yet."""


class IdempotencyRepository:
    def __init__(self, engine: AsyncEngine, *, in_flight_timeout: float = 60.0) -> None:
        self.engine = engine
        self.in_flight_timeout = timedelta(seconds=in_flight_timeout)

    async def reserve(self, key: str, endpoint: str, request_hash: str) -> StoredAnswer | None:
        """None: the key is ours, go ahead (and `record` the answer). A StoredAnswer: replay
        it. Raises IdempotencyMismatchError or IdempotencyInFlightError."""
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
            reserved = await connection.execute(
                insert(KEYS)
                .values(key=key, endpoint=endpoint, request_hash=request_hash, created_at=now)
                .on_conflict_do_nothing(index_elements=[KEYS.c.key, KEYS.c.endpoint])
                .returning(KEYS.c.key)
            )
            if reserved.first() is not None:
                return None
            row = (
                await connection.execute(
                    select(KEYS).where(KEYS.c.key == key, KEYS.c.endpoint == endpoint)
                )
            ).one()
            if row.request_hash != request_hash:
                raise IdempotencyMismatchError(key)
            if row.status_code is not None:
                return StoredAnswer(row.status_code, dict(row.response or {}))
            # In flight — unless its request died: then the key may be taken over.
            taken = await connection.execute(
                update(KEYS)
                .where(
                    KEYS.c.key == key,
                    KEYS.c.endpoint == endpoint,
                    KEYS.c.status_code.is_(None),
                    KEYS.c.created_at < now - self.in_flight_timeout,
                )
                .values(created_at=now)
            )
            if taken.rowcount == 1:
                return None
            raise IdempotencyInFlightError(key)

    async def record(
        self,
        connection: AsyncConnection,
        key: str,
        endpoint: str,
        status_code: int,
        body: dict[str, Any],
    ) -> None:
        """Store the answer on the caller's connection (in the transaction of the effect)."""
        await connection.execute(
            update(KEYS)
            .where(KEYS.c.key == key, KEYS.c.endpoint == endpoint)
            .values(status_code=status_code, response=body)
        )

    async def record_now(
        self, key: str, endpoint: str, status_code: int, body: dict[str, Any]
    ) -> None:
        async with self.engine.begin() as connection:
            await self.record(connection, key, endpoint, status_code, body)

    async def forget(self, key: str, endpoint: str) -> None:
        """Drop a reservation whose request failed unexpectedly, so a retry can run."""
        async with self.engine.begin() as connection:
            await connection.execute(
                delete(KEYS).where(
                    KEYS.c.key == key, KEYS.c.endpoint == endpoint, KEYS.c.status_code.is_(None)
                )
            )

    async def prune(self, older_than: timedelta) -> int:
        async with self.engine.begin() as connection:
            cutoff = await database_now(connection) - older_than
            result = await connection.execute(delete(KEYS).where(KEYS.c.created_at < cutoff))
            return result.rowcount or 0
