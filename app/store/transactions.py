"""Running a whole transaction again when PostgreSQL aborted it to break a deadlock.

Sorting keys the same way in every statement (app/store/queue/enqueue.py) keeps two bulk
enqueues from deadlocking each other, but other writers (a worker completing a batch, a
rescue) lock rows too, and PostgreSQL may still pick a transaction as a deadlock's victim
(`40P01`) or fail it for serializability (`40001`). Both mean: the transaction was rolled back
whole, run it again. The tries are bounded and jittered so that replicas that collided do not
collide again in step; past them the caller gets `TransactionConflictError`, which the API
answers with 503 and `Retry-After` (never a 500).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from app.errors import HubsyncError
from app.store.sqlstate import must_retry_transaction, sqlstate_of

log = logging.getLogger("hubsync.store")

T = TypeVar("T")
TRANSACTION_TRIES = 6
FIRST_DELAY = 0.05  # seconds before the second try; doubled each time, with full jitter
MAX_DELAY = 1.0


class TransactionConflictError(HubsyncError, RuntimeError):
    """The transaction was aborted by the database (deadlock or serialization failure) on
    every try; nothing it did was kept."""


async def retry_transaction(
    action: Callable[[], Awaitable[T]], *, tries: int = TRANSACTION_TRIES, what: str = "transaction"
) -> T:
    """Run `action` (which opens and commits its own transaction) until it commits; again,
    after a jittered pause, when the database aborted it with 40P01 or 40001."""
    for attempt in range(1, tries + 1):
        try:
            return await action()
        except DBAPIError as exc:
            if not must_retry_transaction(exc):
                raise
            if attempt == tries:
                raise TransactionConflictError(
                    f"the {what} was aborted by the database ({sqlstate_of(exc)}) "
                    f"{tries} times; nothing was done"
                ) from exc
            delay = random.uniform(0, min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1)))  # noqa: S311 -- jitter, not secrecy
            log.info(
                "%s aborted by the database (%s), try %d of %d; again in %.2f s",
                what,
                sqlstate_of(exc),
                attempt,
                tries,
                delay,
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
