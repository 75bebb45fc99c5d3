"""Which HubSpot portal hubsync may sync with: the one its links belong to, and no other.

A database records its portal at the first start (the token's portal from HubSpot's account
info, or the built-in sandbox). Every later start compares: another portal, or the sandbox on
a database linked to a real portal (or the reverse), is refused before anything is written,
with one line that names `hubsync relink --reset` for moving on purpose. A PostgreSQL
database linked before portals were recorded is marked by its migration as linked to a real
portal not yet known (UNKNOWN_PORTAL): the first start with a token adopts that portal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import HubsyncError
from app.store.portal import (
    HUBSPOT,
    SANDBOX,
    UNKNOWN_PORTAL,
    Portal,
    record_portal,
    recorded_portal,
)
from app.sync.core.jobs import ClaimedJob, JobHandler, JobOutcome

log = logging.getLogger("hubsync.portal")
RELINK = "to move on purpose, run `hubsync relink --reset` (it forgets every link)"


class PortalRefusedError(HubsyncError):
    """hubsync must not sync with this portal; the message is one line for an operator."""


class AccountSource(Protocol):
    async def account_details(self) -> dict[str, Any]: ...


async def observe_portal(client: AccountSource, *, sandbox: bool) -> Portal:
    details = await client.account_details()
    portal_id = details.get("portalId")
    if not isinstance(portal_id, int) or isinstance(portal_id, bool):
        raise PortalRefusedError("HubSpot's account info named no portal id")
    return Portal(SANDBOX if sandbox else HUBSPOT, str(portal_id))


async def verify_portal(
    engine: AsyncEngine, observed: Portal, *, base_url: str | None = None
) -> None:
    """Record `observed` on a database that has no portal yet; refuse a different one."""
    async with engine.begin() as connection:
        recorded = await recorded_portal(connection)
        if recorded is None or (
            recorded == Portal(HUBSPOT, UNKNOWN_PORTAL) and observed.kind == HUBSPOT
        ):
            await record_portal(connection, observed, base_url)
            recorded = await recorded_portal(connection)  # another replica may have been first
            if recorded == observed:
                log.info("links are now bound to %s", observed)
                return
    if recorded == observed:
        return
    if observed.kind == SANDBOX:
        why = f"HUBSYNC_MODE=demo would run the built-in sandbox on links of {recorded}"
    else:
        why = f"this database's links belong to {recorded}, but the token is for {observed}"
    raise PortalRefusedError(f"refusing to start: {why}; {RELINK}")


class PortalGuard:
    """Checks the portal once per process: at start-up, before hubsync writes anything to
    HubSpot, or — when the database or HubSpot could not answer then — before the worker's
    first batch, so no job ever reaches a portal not checked."""

    def __init__(self, engine: AsyncEngine, *, sandbox: bool, base_url: str | None) -> None:
        self.engine = engine
        self.sandbox = sandbox
        self.base_url = base_url
        self.client: AccountSource | None = None
        self.verified = False
        self._lock = asyncio.Lock()

    async def check_at_start(self, client: AccountSource) -> None:
        """A refusal stops start-up; anything else (not migrated, database or HubSpot down)
        leaves the check to the first batch."""
        self.client = client
        try:
            await self.verify()
        except PortalRefusedError:
            raise
        except Exception as exc:  # noqa: BLE001 -- see the docstring
            log.warning("the HubSpot portal check waits for the first sync: %s", type(exc).__name__)

    async def verify(self) -> None:
        if self.verified:
            return
        if self.client is None:
            raise PortalRefusedError("no HubSpot client to check the portal with")
        async with self._lock:
            if not self.verified:
                observed = await observe_portal(self.client, sandbox=self.sandbox)
                await verify_portal(self.engine, observed, base_url=self.base_url)
                self.verified = True

    def guard(self, handler: JobHandler) -> JobHandler:
        """`handler`, run only once the portal is verified (a refusal fails the batch, which
        the worker retries: the jobs wait, nothing is written)."""

        async def guarded(jobs: Sequence[ClaimedJob]) -> Sequence[JobOutcome]:
            await self.verify()
            return await handler(jobs)

        return guarded
