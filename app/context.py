"""What the running service holds: built once in the lifespan, handed to every handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.settings import Settings
from app.warp.connector import WarpConnector


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    warp_engine: AsyncEngine
    warp: WarpConnector
    # Filled in by later layers (HubSpot client, worker, scheduler); keyed by role.
    extras: dict[str, Any] = field(default_factory=dict)
