"""uvicorn, set up for clients that do not play fair.

uvicorn bounds the time between requests on a kept-alive connection but not the time a
request's headers take to arrive: a client sending one header byte a second holds its
connection for ever. `HeaderTimeoutProtocol` closes a connection whose request headers are
not complete within the limit. Bodies are bounded in the app (app/api/limits.py); the number
of connections and tasks by uvicorn's `limit_concurrency` (503 past it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options against slow and numerous clients, for this process. The header
    limit is a class attribute: uvicorn builds protocols from the class (and, with several
    worker processes, each sets it again when it builds its app)."""
    HeaderTimeoutProtocol.header_timeout = settings.header_timeout_seconds
    return {"http": HeaderTimeoutProtocol, "limit_concurrency": settings.max_connections}
