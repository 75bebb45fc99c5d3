"""What the running service holds: built once in the lifespan, handed to every handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Secret, Settings
from app.warp.connector import WarpConnector


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    warp_engine: AsyncEngine
    warp: WarpConnector
    # Signs HubSpot webhooks: HUBSPOT_CLIENT_SECRET, or one generated for the sandbox.
    webhook_secret: Secret | None = None
    # Filled in by later layers (HubSpot client, worker, scheduler); keyed by role.
    extras: dict[str, Any] = field(default_factory=dict)
