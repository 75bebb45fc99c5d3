"""Request ids: every response carries `X-Request-ID` (the caller's, when sane, else a new one)."""

from __future__ import annotations

import os
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_NAME = REQUEST_ID_HEADER.lower().encode("latin-1")
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def request_id_of(scope: Scope) -> str | None:
    state: dict[str, Any] = scope.get("state") or {}
    value = state.get("request_id")
    return value if isinstance(value, str) else None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope["headers"]) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (_HEADER_NAME, request_id.encode("latin-1"))

        # Every request passes here: the raw header list is read, and copied with one more, not
        # through Starlette's Headers/MutableHeaders objects (bench/README.md, intake floor).
        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if not any(name == _HEADER_NAME for name, _ in headers):
                    message["headers"] = [*headers, header]
            await send(message)

        await self.app(scope, receive, send_with_id)


def new_request_id() -> str:
    """32 random hex digits (a uuid4's entropy, without building a UUID)."""
    return os.urandom(16).hex()


def _incoming_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The caller's X-Request-ID when it is sane (the last one sent), else None."""
    incoming = None
    for name, value in headers:
        if name == _HEADER_NAME:
            incoming = value
    if incoming is None:
        return None
    text = incoming.decode("latin-1")
    return text if _SANE_ID.match(text) else None


def with_lifespan_state(app: ASGIApp, state: dict[str, Any]) -> ASGIApp:
    """`app` with the lifespan state handed to every request, as uvicorn does; for calls that
    reach the app in-process (the sandbox's webhooks, tests) rather than through a server."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "state": dict(state)}
        await app(scope, receive, send)

    return wrapped
