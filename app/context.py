"""What the running service holds: built once in the lifespan, handed to every handler.

Each later layer fills in its own typed slot as it starts (the HubSpot connection, the queue
and its worker, the scheduler, the reconciler, the webhook intake) and empties it as it stops;
a slot is None while its layer is not running (an API-only test app, or before start-up).
`require` reads a slot that a route cannot work without.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import HubsyncError
from app.settings import Secret, Settings
from app.warp.connector import WarpConnector

if TYPE_CHECKING:
    from app.hubspot.client import HubSpotClient
    from app.hubspot.ratelimit import RateLimiter
    from app.hubspot.readiness import PropertyBootstrap
    from app.sandbox.sandbox import Sandbox
    from app.store.idempotency import IdempotencyRepository
    from app.store.queue import QueueRepository
    from app.sync.core.jobs import JobHandler
    from app.sync.intake.writer import IntakeWriter
    from app.sync.operator.overview import CostlyFigures
    from app.sync.reconcile.catchup import CatchUp
    from app.sync.reconcile.service import Reconciler
    from app.sync.schedule.registry import JobBook
    from app.sync.worker.capture_drain import CaptureDrain
    from app.sync.worker.notify import QueueListener
    from app.sync.worker.portal import PortalGuard
    from app.sync.worker.worker import Worker

T = TypeVar("T")


class NotRunningError(HubsyncError):
    """A part of the service that a caller needs has not started (or has stopped)."""


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    warp_engine: AsyncEngine
    warp: WarpConnector
    # Signs HubSpot webhooks: HUBSPOT_CLIENT_SECRET, or one generated for the sandbox.
    webhook_secret: Secret | None = None
    # The HubSpot connection (main.attach_hubspot).
    hubspot: HubSpotClient | None = None
    hubspot_limiter: RateLimiter | None = None
    sandbox: Sandbox | None = None  # the embedded HubSpot sandbox, in sandbox mode only
    properties: PropertyBootstrap | None = None
    portal_guard: PortalGuard | None = None
    job_handler: JobHandler | None = None
    # The queue machinery (app.sync.schedule.runtime).
    queue: QueueRepository | None = None
    idempotency: IdempotencyRepository | None = None
    worker: Worker | None = None
    queue_listener: QueueListener | None = None
    # The change capture in WARP (app.sync.worker.capture_drain), drained with the worker on;
    # on PostgreSQL its own LISTEN on WARP's database.
    capture_drain: CaptureDrain | None = None
    capture_listener: QueueListener | None = None
    scheduler: Any = None  # APScheduler 3's AsyncIOScheduler (the package ships no types)
    job_book: JobBook | None = None  # where the scheduler's jobs record their runs
    # Reconciliation (app.sync.reconcile.runtime) and the webhook intake (main).
    reconciler: Reconciler | None = None
    catchup: CatchUp | None = None
    intake: IntakeWriter | None = None
    # The dashboard's figures that scan many rows, cached (app.sync.operator.overview).
    costly_figures: CostlyFigures | None = None


def require(value: T | None, role: str) -> T:
    """`value`, or NotRunningError naming the part of the service that is not running."""
    if value is None:
        raise NotRunningError(f"the {role} is not running")
    return value
