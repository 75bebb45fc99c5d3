"""Liveness and readiness: is the process up, and can it do its work right now?"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.api.deps import app_context
from app.store.migrate import current_revision, head_revision
from app.sync.gate import Readiness

log = logging.getLogger("hubsync.health")
READY_TIMEOUT_SECONDS = 3.0


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    context = app_context(request)
    checks: dict[str, str] = {}
    ready = True
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with context.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
            current, head = await current_revision(context.engine), head_revision()
    except Exception as exc:  # noqa: BLE001 -- any failure to reach the database means not ready
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        checks["database"] = f"unreachable ({type(exc).__name__})"
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    if current == head:
        checks["migrations"] = "ok"
    else:
        ready = False
        checks["migrations"] = f"at {current or 'nothing'}, head is {head}; run `hubsync migrate`"
    properties: Readiness | None = context.extras.get("properties")
    if properties is not None:
        # Jobs wait until hubsync's HubSpot properties exist (app/hubspot/readiness.py).
        checks["hubspot_properties"] = properties.reason
        ready = ready and properties.ready
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
