"""What one request may cost, enforced while it is read rather than after.

- A body over `max_body_bytes` is refused by its Content-Length before anything is read, and
  otherwise as soon as the bytes read pass the limit (413); the connection is then closed.
- A body must arrive within `body_timeout` seconds of the request's headers, and, after a
  grace of `MIN_RATE_GRACE_SECONDS`, at `MIN_BYTES_PER_SECOND` on average (408): a client
  sending a byte a second is cut off after about two seconds.
- For callers not yet authenticated (webhook deliveries, whose signature can only be checked
  on the whole body), at most `max_unauthenticated` bodies are read at once, and their
  declared sizes (1 MiB when chunked) add up to at most `UNAUTHENTICATED_BUDGET_BYTES`: the
  memory such bodies can hold is bounded whatever the number of connections. Past either
  bound, 503 with Retry-After at once rather than a queue that grows with the attack. A route
  marks its caller authenticated (`mark_authenticated`) once its token checked out.

Header read time is limited in the HTTP server itself (app/http_server.py). `on_refusal` hears
of a refusal given before the route ran (the webhook route counts its deliveries by answer).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import RETRY_AFTER_SECONDS, ApiError
from app.api.middleware import REQUEST_ID_HEADER, request_id_of

MAX_BODY_BYTES = 1 << 20
UNAUTHENTICATED_BUDGET_BYTES = 64 << 20
MIN_BYTES_PER_SECOND = 1024
MIN_RATE_GRACE_SECONDS = 2.0
_AUTHENTICATED = "authenticated"


def mark_authenticated(scope: Scope) -> None:
    scope.setdefault("state", {})[_AUTHENTICATED] = True


def _is_authenticated(scope: Scope) -> bool:
    return bool((scope.get("state") or {}).get(_AUTHENTICATED))


class RequestLimits:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        body_timeout: float = 30.0,
        max_unauthenticated: int = 1024,
        on_refusal: Callable[[Scope, int], None] | None = None,
    ) -> None:
        self.app = app
        self.on_refusal = on_refusal
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.max_unauthenticated = max_unauthenticated
        self.unauthenticated_reading = 0
        self.unauthenticated_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            refusal = self._refuse_declared(declared.strip())
            if refusal is not None:
                if self.on_refusal is not None:
                    self.on_refusal(scope, refusal.status)
                await send_error(scope, send, refusal)
                return
        reserve = int(declared) if declared is not None else self.max_body_bytes
        reader = _BodyReader(self, scope, receive, reserve)
        try:
            await self.app(scope, reader.receive, send)
        finally:
            reader.release()

    def _refuse_declared(self, declared: str) -> ApiError | None:
        if not declared.isdigit() or len(declared) > 19:
            return ApiError(400, "Content-Length is not a number")
        if int(declared) > self.max_body_bytes:
            return ApiError(413, f"the body is larger than {self.max_body_bytes} bytes")
        return None


def _content_length(scope: Scope) -> str | None:
    """The first Content-Length, as `Headers(scope=scope).get` gives it, without building
    a Headers object (every request passes here)."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"content-length":
            return value.decode("latin-1")
    return None


class _BodyReader:
    """One request's `receive`, counted, timed and (unauthenticated) admitted."""

    def __init__(self, limits: RequestLimits, scope: Scope, receive: Receive, reserve: int) -> None:
        self.limits = limits
        self.scope = scope
        self.inner = receive
        self.reserve = reserve
        self.started = asyncio.get_running_loop().time()
        self.deadline = self.started + limits.body_timeout
        self.size = 0
        self.done = False
        self.holding = False

    async def receive(self) -> Message:
        if self.done:  # after the body: waiting for a disconnect is not bounded here
            return await self.inner()
        self._admit()
        # The next bytes are due by the total deadline, and by when the average rate would
        # fall under the minimum.
        due = min(
            self.deadline,
            self.started + MIN_RATE_GRACE_SECONDS + (self.size + 1) / MIN_BYTES_PER_SECOND,
        )
        remaining = due - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                message = await self.inner()
        except TimeoutError:
            self._finish()
            raise ApiError(
                408,
                f"the request body did not arrive in time (within {self.limits.body_timeout:g} s, "
                f"at {MIN_BYTES_PER_SECOND} bytes/s at least)",
            ) from None
        if message["type"] != "http.request":
            self._finish()
            return message
        self.size += len(message.get("body", b""))
        if self.size > self.limits.max_body_bytes:
            self._finish()
            raise ApiError(413, f"the body is larger than {self.limits.max_body_bytes} bytes")
        if not message.get("more_body", False):
            self._finish()
        return message

    def _admit(self) -> None:
        if self.holding or _is_authenticated(self.scope):
            return
        limits = self.limits
        if (
            limits.unauthenticated_reading >= limits.max_unauthenticated
            or limits.unauthenticated_bytes + self.reserve > UNAUTHENTICATED_BUDGET_BYTES
        ):
            raise ApiError(503, "too many requests are being read right now; retry shortly")
        limits.unauthenticated_reading += 1
        limits.unauthenticated_bytes += self.reserve
        self.holding = True

    def _finish(self) -> None:
        self.done = True
        self.release()

    def release(self) -> None:
        if self.holding:
            self.holding = False
            self.limits.unauthenticated_reading -= 1
            self.limits.unauthenticated_bytes -= self.reserve


async def send_error(
    scope: Scope, send: Send, error: ApiError, headers: dict[str, str] | None = None
) -> None:
    """The JSON error answer, from a middleware (no Request object yet); the connection is
    closed, as the body was not read."""
    request_id = request_id_of(scope)
    body: dict[str, Any] = {"error": error.code, "detail": error.detail, "request_id": request_id}
    headers_out = [(b"content-type", b"application/json"), (b"connection", b"close")]
    headers_out += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if request_id:
        headers_out.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
    if error.status == 503:
        headers_out.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers_out})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
