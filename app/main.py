"""The hubsync web application: `create_app(settings)` builds it, the lifespan builds and
disposes everything it holds (engines, HubSpot client, worker, scheduler)."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TypedDict

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from app.admin.app import MOUNT as ADMIN_MOUNT
from app.admin.app import build_admin
from app.admin.embedded import EmbeddedAccess, generate_embedded_access
from app.api import (
    config,
    customers,
    health,
    links,
    metrics,
    operator,
    reconciliation,
    sync_jobs,
    webhooks,
)
from app.api.deps import app_context
from app.api.errors import (
    DATABASE_DOWN,
    ApiError,
    handle_api_error,
    handle_database_down,
    handle_http_exception,
    handle_unexpected,
)
from app.api.limits import RequestLimits
from app.api.methods import AllowedMethods
from app.api.metrics import refused_delivery_counter
from app.api.middleware import RequestIdMiddleware, with_lifespan_state
from app.context import AppContext, require
from app.demo import SandboxRefill, queue_every_customer
from app.hubspot.connection import (
    SANDBOX_APP_ID,
    HubSpotConnection,
    open_hubspot,
)
from app.sandbox.access import LoopbackOrToken
from app.sandbox.embedded import build_sandbox_app
from app.settings import Secret, Settings, SettingsError
from app.store.bootstrap import is_embedded_default
from app.store.db import create_engine, pool_size_for
from app.store.webhook_events import finish_events_for_jobs
from app.sync.core.jobs import JobHandler
from app.sync.engine.engine import SyncEngine
from app.sync.intake.writer import IntakeWriter
from app.sync.reconcile.full_run import ReconcileHubSpot
from app.sync.reconcile.runtime import start_reconciliation, stop_reconciliation
from app.sync.reports.runtime import start_reports
from app.sync.schedule.runtime import start_runtime, stop_runtime
from app.sync.worker.gate import gated
from app.sync.worker.portal import PortalGuard
from app.warp.connector import SqlWarpConnector

log = logging.getLogger("hubsync")
SANDBOX_MOUNT = "/_hubspot"


class LifespanState(TypedDict):
    hubsync: AppContext


def build_routes(settings: Settings) -> list[BaseRoute]:
    return [
        *webhooks.routes,  # first: HubSpot's deliveries are most of the requests
        *health.routes,
        *(metrics.routes if settings.metrics_port is None else []),
        *sync_jobs.routes,
        *customers.routes,
        *links.routes,
        *config.routes,
        *reconciliation.routes,
        *operator.routes,
    ]


def log_start(settings: Settings) -> None:
    log.info(
        "hubsync starting in demo mode with the built-in HubSpot sandbox (%s)"
        if settings.sandbox_mode
        else "hubsync starting against HubSpot at %s",
        settings.describe()["hubspot"],
        extra={"config": settings.describe()},
    )
    for warning in settings.startup_warnings():
        log.warning(warning)


def build_middleware(settings: Settings, routes: list[BaseRoute]) -> list[Middleware]:
    """Request ids outermost (every answer has one), then methods, then the body limits."""
    return [
        Middleware(RequestIdMiddleware),
        Middleware(AllowedMethods, routes=routes),
        Middleware(
            RequestLimits,
            body_timeout=settings.body_timeout_seconds,
            max_unauthenticated=settings.max_unauthenticated_requests,
            on_refusal=refused_delivery_counter(webhooks.DELIVERY_PATHS),
        ),
    ]


async def root(request: Request) -> Response:
    """`/` leads people to the console when it is enabled."""
    if app_context(request).settings.admin_enabled:
        return RedirectResponse(f"{ADMIN_MOUNT}/", status_code=307)
    raise ApiError(404, "nothing here: the API is under /v1 (see openapi.yaml)")


def open_context(settings: Settings, webhook_secret: Secret | None) -> AppContext:
    """The engines (one when WARP lives in hubsync's database) and what uses them."""
    pool_size = pool_size_for(settings.effective_worker_concurrency)
    engine = create_engine(settings.database_url.reveal(), pool_size=pool_size)
    same_database = settings.effective_warp_database_url == settings.database_url
    warp_engine = (
        engine
        if same_database
        else create_engine(settings.effective_warp_database_url.reveal(), pool_size=pool_size)
    )
    return AppContext(
        settings=settings,
        engine=engine,
        warp_engine=warp_engine,
        warp=SqlWarpConnector(warp_engine, settings.effective_customers_table),
        webhook_secret=webhook_secret,
    )


async def close_context(context: AppContext) -> None:
    if context.costly_figures is not None:
        await context.costly_figures.close()
    if context.warp_engine is not context.engine:
        await context.warp_engine.dispose()
    await context.engine.dispose()


async def attach_hubspot(
    context: AppContext, hubspot: HubSpotConnection, guard: PortalGuard
) -> None:
    """What the routes and the worker take from the open HubSpot connection."""
    context.hubspot = hubspot.client
    context.hubspot_limiter = hubspot.client.limiter
    if hubspot.sandbox_app is not None:
        context.sandbox = hubspot.sandbox_app.state.sandbox
    context.properties = hubspot.properties
    context.portal_guard = guard
    context.job_handler = await build_job_handler(context, guard, hubspot)


async def build_job_handler(
    context: AppContext, guard: PortalGuard, hubspot: HubSpotConnection
) -> JobHandler:
    """The sync engine, behind what must hold before a batch reaches HubSpot. Jobs wait while
    hubsync's properties are missing (HubSpot not ready: the gate, outermost, so they wait
    without an error) or the portal is unchecked; in demo mode the sandbox is refilled from
    the links first (now, when the portal was checked at start)."""
    handler: JobHandler = SyncEngine(
        engine=context.engine,
        warp=context.warp,
        hubspot=hubspot.client,
        after_batch=finish_events_for_jobs,
    )
    if hubspot.sandbox_app is not None:
        refill = SandboxRefill(context, require(context.sandbox, "sandbox"))
        if guard.verified:  # before the worker starts
            await refill.at_start()
        handler = refill.first(handler)  # the portal was checked late, or the refill failed
    return gated(guard.guard(handler), hubspot.properties)


async def start_sync(context: AppContext, reconcile_client: ReconcileHubSpot) -> None:
    """The queue, worker, listener and scheduler; reconciliation; the reports."""
    await start_runtime(context)
    await start_reconciliation(context, reconcile_client)
    await start_reports(context)  # after each scheduled run, and failed or late jobs


def create_app(
    settings: Settings,
    *,
    access: EmbeddedAccess | None = None,
    when_started: Callable[[], None] | None = None,
) -> Starlette:
    """`when_started` runs once the lifespan has started everything, before the first
    request (`hubsync serve` tunes the garbage collector there). `access`: the demo's
    credentials, when the caller already read them (`hubsync serve` prints them first)."""
    problems = settings.startup_problems()
    if problems:
        raise SettingsError(problems[0], problems)
    if access is None:
        access = generate_embedded_access(settings)  # sandbox mode with no credentials only
    settings = access.settings
    if settings.sandbox_mode and settings.hubspot_app_id is None:
        # The sandbox attributes API writes to this app id; knowing it marks our own echoes.
        settings = replace(settings, hubspot_app_id=SANDBOX_APP_ID)
    webhook_secret = settings.hubspot_client_secret or (
        Secret(secrets.token_urlsafe(32)) if settings.sandbox_mode else None
    )
    sandbox_app = build_sandbox_app(settings, webhook_secret) if settings.sandbox_mode else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[LifespanState]:
        context = open_context(settings, webhook_secret)
        engine = context.engine
        state: LifespanState = {"hubsync": context}
        log_start(settings)
        guard = PortalGuard(
            engine, sandbox=settings.sandbox_mode, base_url=settings.describe()["hubspot"]
        )
        try:
            async with open_hubspot(
                settings,
                engine,
                sandbox_app=sandbox_app,
                webhook_receiver=with_lifespan_state(app, dict(state)),
                before_bootstrap=guard.check_at_start,
            ) as hubspot:
                await attach_hubspot(context, hubspot, guard)
                demo = hubspot.sandbox_app is not None and guard.verified
                await start_sync(context, hubspot.reconcile_client or hubspot.client)
                intake = IntakeWriter(
                    engine, require(context.queue, "queue"), app_id=settings.hubspot_app_id
                )
                await intake.start()  # webhook deliveries' group commit
                context.intake = intake
                if demo and settings.demo_data and is_embedded_default(settings):
                    await queue_every_customer(context)
                try:
                    async with contextlib.AsyncExitStack() as extra_servers:
                        if settings.metrics_port is not None:
                            await extra_servers.enter_async_context(
                                metrics.metrics_server(settings.metrics_port, dict(state))
                            )
                        if when_started is not None:
                            when_started()
                        yield state
                finally:
                    await intake.stop()  # the deliveries already waiting are written first
                    await stop_reconciliation(context)
                    await stop_runtime(context)
        finally:
            await close_context(context)
            log.info("hubsync stopped")

    routes = build_routes(settings)
    routes.append(Route("/", root, methods=["GET"]))
    if settings.admin_enabled:
        routes.append(Mount(ADMIN_MOUNT, app=build_admin(settings, one_time=access.one_time)))
    if sandbox_app is not None:
        # For people: the sandbox's HubSpot API and /_sandbox control routes, browsable.
        routes.append(
            Mount(
                SANDBOX_MOUNT,
                app=LoopbackOrToken(sandbox_app, [t.reveal() for t in settings.api_tokens]),
            )
        )
    return Starlette(
        routes=routes,
        middleware=build_middleware(settings, routes),
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            **dict.fromkeys(DATABASE_DOWN, handle_database_down),
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
