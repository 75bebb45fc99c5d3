"""The hubsync web application: `create_app(settings)` builds it, the lifespan builds and
disposes everything it holds (engines, HubSpot client, worker, scheduler)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from app.api import config, health, sync_jobs, webhooks
from app.api.errors import ApiError, handle_api_error, handle_http_exception, handle_unexpected
from app.api.middleware import RequestIdMiddleware
from app.context import AppContext
from app.settings import Secret, Settings
from app.store.db import create_engine, create_sessionmaker
from app.warp.connector import SqlWarpConnector

log = logging.getLogger("hubsync")


class LifespanState(TypedDict):
    hubsync: AppContext


def build_routes() -> list[BaseRoute]:
    return [*health.routes, *sync_jobs.routes, *webhooks.routes, *config.routes]


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[LifespanState]:
        engine = create_engine(settings.database_url.reveal())
        same_database = settings.effective_warp_database_url == settings.database_url
        warp_engine = (
            engine
            if same_database
            else create_engine(settings.effective_warp_database_url.reveal())
        )
        context = AppContext(
            settings=settings,
            engine=engine,
            sessions=create_sessionmaker(engine),
            warp_engine=warp_engine,
            warp=SqlWarpConnector(warp_engine, settings.effective_customers_table),
            webhook_secret=settings.hubspot_client_secret
            or (Secret(secrets.token_urlsafe(32)) if settings.sandbox_mode else None),
        )
        log.info("hubsync starting", extra={"config": settings.describe()})
        try:
            yield {"hubsync": context}
        finally:
            if warp_engine is not engine:
                await warp_engine.dispose()
            await engine.dispose()
            log.info("hubsync stopped")

    return Starlette(
        routes=build_routes(),
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
