"""HTTP methods answered the same way on every path: `OPTIONS` lists what a path allows
(204 with `Allow`), and a method a path does not allow is a 405 whose `Allow` names every
method of that path (Starlette alone names only the first route's, and knows no OPTIONS)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import ApiError
from app.api.limits import send_error


class AllowedMethods:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = [route for route in routes if isinstance(route, Route)]
        # Paths without parameters, by their methods: most requests (every webhook delivery)
        # are known to be taken as they are without matching each route's pattern.
        self.static: dict[str, set[str]] = {}
        for route in self.routes:
            if "{" not in route.path:
                self.static.setdefault(route.path, set()).update(route.methods or ())

    def allowed(self, scope: Scope) -> set[str] | None:
        """The methods of the request's path; None when one of its routes takes it as is."""
        if not scope.get("root_path") and scope["method"] in self.static.get(scope["path"], ()):
            return None
        methods: set[str] = set()
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return None
            if match is Match.PARTIAL:
                methods |= route.methods or set()
        return methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        methods = self.allowed(scope)
        if not methods:  # a full match, or a path no route has (404 from the router)
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(methods | {"OPTIONS"}))
        if scope["method"] == "OPTIONS":
            await Response(status_code=204, headers={"Allow": allow})(scope, receive, send)
            return
        refusal = ApiError(405, f"{scope['method']} is not allowed here; allowed: {allow}")
        await send_error(scope, send, refusal, headers={"allow": allow})
