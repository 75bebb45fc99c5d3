"""Liveness and readiness: is the process up, and can it do its work right now?"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.api.deps import app_context
from app.api.errors import RETRY_AFTER_SECONDS
from app.store.migrate import SchemaState, schema_state
from app.sync.worker.gate import Readiness
from app.sync.worker.portal import PortalGuard, PortalRefusedError
from app.warp.columns import TableMissingError, real_columns

log = logging.getLogger("hubsync.health")
READY_TIMEOUT_SECONDS = 3.0
RETRY_LATER = {"Retry-After": str(RETRY_AFTER_SECONDS)}


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
            schema: SchemaState = await schema_state(context.engine)
    except Exception as exc:  # noqa: BLE001 -- any failure to reach the database means not ready
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        checks["database"] = f"unreachable ({type(exc).__name__})"
        return JSONResponse(
            {"status": "unavailable", "checks": checks}, status_code=503, headers=RETRY_LATER
        )
    checks["migrations"] = schema.message
    ready = schema.ready
    table = context.settings.effective_customers_table
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await real_columns(context.warp_engine, table)
        checks["warp_customers_table"] = "ok"
    except TableMissingError:
        ready = False
        checks["warp_customers_table"] = f"{table} does not exist; check WARP_CUSTOMERS_TABLE"
    except Exception as exc:  # noqa: BLE001 -- WARP's database unreachable: not ready
        ready = False
        checks["warp_customers_table"] = f"unreachable ({type(exc).__name__})"
    for warning in context.settings.startup_warnings():
        ready = False
        checks["webhooks"] = warning
    portal = await portal_check(context.portal_guard)
    if portal is not None:
        checks["hubspot_portal"] = portal
        ready = ready and portal == "ok"
    properties: Readiness | None = context.properties
    if properties is not None:
        # Jobs wait until hubsync's HubSpot properties exist (app/hubspot/readiness.py).
        checks["hubspot_properties"] = properties.reason
        ready = ready and properties.ready
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers=None if ready else RETRY_LATER,
    )


async def portal_check(guard: PortalGuard | None) -> str | None:
    """The portal check, once per process (then remembered): no job syncs until it passes, so
    neither is the replica ready. None when this process holds no HubSpot connection."""
    if guard is None:
        return None
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await guard.verify()
    except PortalRefusedError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 -- HubSpot or the database not answering: not yet
        return f"not checked yet ({type(exc).__name__}); jobs wait for it"
    return "ok"


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
