"""The HubSpot sandbox as a Starlette application, and a way to serve it on its own.

`create_sandbox_app(config)` builds the app; its state object is `app.state.sandbox` (a
`Sandbox`). Webhook delivery runs as a background task inside the app's lifespan, so an app
driven through `httpx.ASGITransport` (which skips lifespan) only delivers on
`sandbox.flush_webhooks()` unless the lifespan is entered.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from app.sandbox.access import LoopbackOrToken
from app.sandbox.account_routes import account_routes
from app.sandbox.companies import company_routes
from app.sandbox.config import SandboxConfig
from app.sandbox.control import control_routes
from app.sandbox.errors import ApiError
from app.sandbox.gate import ApiGate
from app.sandbox.property_routes import PREFIXES as PROPERTY_PREFIXES
from app.sandbox.property_routes import property_routes
from app.sandbox.sandbox import Sandbox

__all__ = ["Sandbox", "SandboxConfig", "create_sandbox_app", "run_sandbox"]

COMPANY_PREFIXES = ("/crm/v3/objects/companies", "/crm/objects/2026-03/companies")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code)
    category = "OBJECT_NOT_FOUND" if exc.status_code == 404 else "VALIDATION_ERROR"
    message = f"{exc.detail}: {request.method} {request.url.path}"
    return ApiError(exc.status_code, category, message).response()


def create_sandbox_app(config: SandboxConfig | None = None) -> Starlette:
    sandbox = Sandbox(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sandbox.webhooks.start()
        try:
            yield
        finally:
            await sandbox.webhooks.stop()

    routes = [route for prefix in COMPANY_PREFIXES for route in company_routes(prefix)]
    routes += [route for prefix in PROPERTY_PREFIXES for route in property_routes(prefix)]
    app = Starlette(
        routes=[*routes, *account_routes(), *control_routes()],
        middleware=[Middleware(ApiGate, sandbox=sandbox)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    return app


def run_sandbox(
    host: str = "127.0.0.1", port: int = 8090, config: SandboxConfig | None = None
) -> None:
    """Serve the sandbox with uvicorn until interrupted (the `hubsync sandbox` command). With
    an access token, callers from elsewhere than loopback must present it on every route,
    the control routes included."""
    app: ASGIApp = create_sandbox_app(config)
    if config is not None and config.access_token is not None:
        app = LoopbackOrToken(app, [config.access_token])
    uvicorn.run(app, host=host, port=port, log_level="info")
