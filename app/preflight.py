"""Before `hubsync serve` opens its port: is this the HubSpot portal the database's links
belong to? Refused (one line, exit 2) before anything is written, so a production database
never meets another portal or the sandbox. When HubSpot or the database cannot answer yet,
the process starts anyway: the service's lifespan checks again, and its worker never syncs
before the check has passed."""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import HubsyncError
from app.hubspot.client import HubSpotClient
from app.hubspot.connection import SANDBOX_PORTAL_ID
from app.hubspot.errors import HubSpotAuthError, HubSpotError
from app.hubspot.ratelimit import (
    LocalRateLimiter,
    PostgresRateLimiter,
    create_rate_limiter,
)
from app.settings import Settings
from app.store.db import create_engine
from app.store.models import RateLimitGrant
from app.store.portal import SANDBOX, Portal
from app.sync.worker.portal import PortalRefusedError, observe_portal, verify_portal

log = logging.getLogger("hubsync.preflight")


class PreflightError(HubsyncError):
    """hubsync must not start; the message is one line for an operator."""


async def deployment_limiter(
    settings: Settings, engine: AsyncEngine
) -> LocalRateLimiter | PostgresRateLimiter:
    """The limiter every process of the deployment shares when its log can be reached: the
    preflight's request is made just before the first batches, and one request the shared
    window does not know of is one over HubSpot's limit. A database not reachable or not
    migrated yet has no traffic to share the window with; the request is then paced alone."""
    limiter = create_rate_limiter(engine, settings.hubspot_rate_limit)
    if isinstance(limiter, PostgresRateLimiter):
        try:
            async with engine.connect() as connection:
                ready = await connection.scalar(
                    text("SELECT to_regclass(:table)"), {"table": RateLimitGrant.__tablename__}
                )
        except Exception as exc:  # noqa: BLE001 -- down: checked again by the service
            log.debug("rate-limit log not reachable for the preflight: %s", type(exc).__name__)
            ready = None
        if ready is not None:
            return limiter
    return LocalRateLimiter(settings.hubspot_rate_limit)


async def portal_of_token(settings: Settings, engine: AsyncEngine) -> Portal:
    limiter = await deployment_limiter(settings, engine)
    async with HubSpotClient.from_settings(settings, limiter=limiter) as client:
        try:
            return await observe_portal(client, sandbox=False)
        except HubSpotAuthError:
            raise PreflightError(
                "HubSpot refused HUBSPOT_ACCESS_TOKEN (401/403); not starting"
            ) from None  # not worth retrying: the token itself is wrong
        except PortalRefusedError as exc:
            raise PreflightError(str(exc)) from None


async def preflight(settings: Settings) -> None:
    engine = create_engine(settings.database_url.reveal())
    try:
        if settings.sandbox_mode:
            observed = Portal(SANDBOX, str(SANDBOX_PORTAL_ID))
        else:
            try:
                observed = await portal_of_token(settings, engine)
            except HubSpotError as exc:
                # HubSpot unreachable for now: start anyway; the worker checks before it syncs.
                log.warning("portal check deferred until HubSpot answers: %s", exc)
                return
        await verify_portal(engine, observed, base_url=settings.describe()["hubspot"])
    except PortalRefusedError as exc:
        raise PreflightError(str(exc)) from None
    except PreflightError:
        raise
    except Exception as exc:  # noqa: BLE001 -- not migrated or down: checked again later
        log.debug("portal check deferred until the database answers: %s", type(exc).__name__)
    finally:
        await engine.dispose()
