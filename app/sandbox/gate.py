"""What stands in front of every API route: auth, rate limits, injected faults, headers, the log.

The control routes under `/_sandbox` pass straight through: they are the test harness, not
HubSpot, and neither count nor fail. Everything else is logged on arrival, checked in HubSpot's
order (credentials, then quota, then bad luck), and answered with the rate-limit headers,
except search, which HubSpot answers without them.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.sandbox.errors import ApiError, rate_limit_body

if TYPE_CHECKING:
    from app.sandbox.sandbox import Sandbox

CONTROL_PREFIX = "/_sandbox"
_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


class ApiGate:
    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]  # mounted under a prefix: route on the inner path
        if scope["type"] != "http" or path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        is_search = scope["method"] == "POST" and path.endswith("/search")
        record = sandbox.log.start(scope["method"], path, search=is_search)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                sandbox.log.finish(record, message["status"])
                if not is_search:
                    headers = MutableHeaders(scope=message)
                    for name, value in sandbox.limiter.headers().items():
                        headers[name] = value
            await send(message)

        refusal = self._refusal(scope, is_search=is_search)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        delay = sandbox.faults.delay_seconds(scope["method"], path)
        if delay > 0:
            await asyncio.sleep(delay)
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope, *, is_search: bool) -> Response | None:
        """The answer that replaces the real one, if any: 401, 429 or an injected fault."""
        sandbox = self.sandbox
        if not self._authorized(Headers(scope=scope).get("authorization", "")):
            return ApiError(401, "INVALID_AUTHENTICATION", _AUTH_MESSAGE).response()
        policy = sandbox.limiter.admit(search=is_search)
        if policy is not None:
            sandbox.rate_limited_by_policy[policy] += 1
            return JSONResponse(rate_limit_body(policy), status_code=429)
        status = sandbox.faults.pick_status()
        if status is not None:
            return sandbox.faults.response(status)
        return None

    def _authorized(self, given: str) -> bool:
        config = self.sandbox.config
        if config.access_token is not None:
            return hmac.compare_digest(given.encode(), f"Bearer {config.access_token}".encode())
        scheme, _, token = given.partition(" ")
        return config.open_access or (scheme.lower() == "bearer" and bool(token.strip()))
