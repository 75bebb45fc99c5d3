"""Who may reach a sandbox: callers on this machine (loopback), or anyone presenting one of
the given bearer tokens (HUBSYNC_API_TOKENS for the embedded one at `/_hubspot`, the
`--access-token` of `hubsync sandbox`). Its control routes edit, reset and fault the emulated
portal, so a sandbox bound to 0.0.0.0 must not open them to the network."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class LoopbackOrToken:
    def __init__(self, app: ASGIApp, tokens: Sequence[str]) -> None:
        self.app = app
        self.tokens = [token.encode() for token in tokens]

    def _has_token(self, scope: Scope) -> bool:
        scheme, _, presented = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return False
        given = presented.strip().encode()
        matched = False
        for token in self.tokens:
            matched |= hmac.compare_digest(given, token)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or is_loopback(client[0] if client else None):
            await self.app(scope, receive, send)
            return
        if self._has_token(scope):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {
                "error": "forbidden",
                "detail": "the sandbox answers this machine only, or a bearer API token",
            },
            status_code=403,
        )
        await response(scope, receive, send)
