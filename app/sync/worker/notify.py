"""LISTEN for new queue work on PostgreSQL, so every replica's worker wakes within milliseconds.

`enqueue` sends `NOTIFY hubsync_queue` in the enqueuing transaction; this listener holds one
dedicated asyncpg connection (outside the pool: a LISTEN lives as long as its connection) and
calls `on_notify` for each notification. If the connection drops it reconnects with backoff,
and wakes the worker once on every (re)connect, because notifications sent while it was away
are gone. The worker's poll remains the fallback; LISTEN only makes it fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from sqlalchemy.engine import make_url

from app.settings import mask_url
from app.store.queue import NOTIFY_CHANNEL

log = logging.getLogger("hubsync.notify")

KEEPALIVE_SECONDS = 30.0
CONNECT_TIMEOUT = 10.0


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """`postgresql+asyncpg://…` as the plain libpq-style DSN asyncpg.connect() takes."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class QueueListener:
    def __init__(
        self,
        database_url: str,
        on_notify: Callable[[], None],
        *,
        channel: str = NOTIFY_CHANNEL,
        max_backoff: float = 30.0,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._where = mask_url(database_url)
        self._on_notify = on_notify
        self._channel = channel
        self._max_backoff = max_backoff
        self._keepalive = keepalive
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.notifications = 0
        self.connects = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="hubsync-queue-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._listening.clear()

    async def wait_listening(self) -> None:
        """Until the LISTEN is in place (for tests and start-up checks; bound it yourself)."""
        await self._listening.wait()

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    async def _run(self) -> None:
        failures = 0
        while True:
            lost = asyncio.Event()
            connection: Any = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT)
                connection.add_termination_listener(_setter(lost))
                await connection.add_listener(self._channel, self._notified)
                self.connects += 1
                self._listening.set()
                failures = 0
                log.info("listening for queue notifications on %s", self._where)
                self._on_notify()  # catch up on anything sent while we were not listening
                await self._hold(connection, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- any failure: reconnect after a backoff
                failures += 1
                delay = min(0.5 * 2 ** (failures - 1), self._max_backoff)
                log.warning(
                    "queue listener lost (%s); reconnecting in %.1f s", type(exc).__name__, delay
                )
                self._listening.clear()
                await asyncio.sleep(delay)
            finally:
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), timeout=2)

    async def _hold(self, connection: Any, lost: asyncio.Event) -> None:
        """Keep the LISTEN connection; a periodic ping notices a silently dead socket."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._keepalive):
                    await lost.wait()
            if lost.is_set():
                raise ConnectionError("the LISTEN connection was closed")
            await asyncio.wait_for(connection.fetchval("SELECT 1"), timeout=CONNECT_TIMEOUT)

    def _notified(self, _connection: Any, _pid: int, _channel: str, _payload: str) -> None:
        self.notifications += 1
        self._on_notify()


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    return lambda _connection: event.set()
