"""uvicorn, set up for clients that do not play fair.

uvicorn bounds the time between requests on a kept-alive connection but neither the time a
request's headers take to arrive (a client sending one header byte a second holds its
connection for ever) nor their size (httptools reads a 64 MiB header to its end and uvicorn
serves it). `HeaderTimeoutProtocol` closes a connection whose request headers are not complete
within the time limit, and answers 431 as soon as the request line and headers pass
`MAX_HEADER_BYTES` in all, reading no further (uvicorn's own `h11_max_incomplete_event_size`
applies to its h11 server only, not to httptools). Bodies are bounded in the app
(app/api/limits.py); the number of connections and tasks by uvicorn's `limit_concurrency`
(503 past it).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings

MAX_HEADER_BYTES = 64 << 10
# After a 431, what the client still sends is read and dropped for this long before the
# connection closes: closing on unread bytes would reset it, and the client could lose the
# answer before it read it.
LINGER_SECONDS = 2.0
_TOO_LARGE = json.dumps(
    {
        "error": "request_header_fields_too_large",
        "detail": f"the request line and headers are over {MAX_HEADER_BYTES} bytes in all",
        "request_id": None,
    }
).encode()
_TOO_LARGE_ANSWER = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n\r\n" % len(_TOO_LARGE)
) + _TOO_LARGE


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        # Bytes received since the request began (counted by the chunk, so a header that never
        # ends is stopped within one read of the limit), and the exact size of its line and
        # headers (for headers that end in the same read that passes the limit).
        self._reading_headers = True
        self._received_in_headers = 0
        self._header_bytes = 0
        self._refused = False
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._refused:  # answered 431: dropped until the connection closes
            return
        if self._reading_headers:
            self._received_in_headers += len(data)
        super().data_received(data)
        if self._reading_headers and self._received_in_headers > MAX_HEADER_BYTES:
            self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        self._reading_headers = False
        self._received_in_headers = 0
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse_headers()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refused:  # a refused request's body: no cycle reads it
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._reading_headers = True  # the next request's bytes are its headers first

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _refuse_headers(self) -> None:
        """431, then no more reading: what follows is dropped and the connection closed."""
        self._refused = True
        self._reading_headers = False
        self._disarm_header_timer()
        if self.transport.is_closing():
            return
        self.transport.write(_TOO_LARGE_ANSWER)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

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
    return {
        "http": HeaderTimeoutProtocol,
        "limit_concurrency": settings.max_connections,
        # Whose X-Forwarded-For is believed: the console's login limit counts that address.
        "forwarded_allow_ips": ",".join(settings.trusted_proxies),
    }
