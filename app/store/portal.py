"""The one-row record of which HubSpot portal this database's links belong to."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store import sync_state
from app.store.models import PortalBinding, table_of
from app.store.upsert import insert_for

portal_t = table_of(PortalBinding)
SANDBOX = "sandbox"
HUBSPOT = "hubspot"
# Set by migration 0002 on a database linked before portals were recorded.
UNKNOWN_PORTAL = "unknown"


@dataclass(frozen=True)
class Portal:
    kind: str  # SANDBOX or HUBSPOT
    portal_id: str

    def __str__(self) -> str:
        if self.kind == SANDBOX:
            return f"the built-in HubSpot sandbox (portal {self.portal_id})"
        return f"HubSpot portal {self.portal_id}"


async def recorded_portal(connection: AsyncConnection) -> Portal | None:
    row = (await connection.execute(select(portal_t).where(portal_t.c.id == 1))).first()
    return Portal(row.kind, row.portal_id) if row is not None else None


async def record_portal(
    connection: AsyncConnection, portal: Portal, base_url: str | None = None
) -> None:
    """Record (or, over the UNKNOWN_PORTAL mark, adopt) the portal; replicas starting at the
    same moment insert the same row, so a conflict keeps the first one's."""
    statement = insert_for(connection, portal_t).values(
        id=1, kind=portal.kind, portal_id=portal.portal_id, base_url=base_url
    )
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=["id"],
            set_={"kind": portal.kind, "portal_id": portal.portal_id, "base_url": base_url},
            where=portal_t.c.portal_id == UNKNOWN_PORTAL,
        )
    )


async def count_links(connection: AsyncConnection) -> int:
    links = sync_state.links
    return int((await connection.execute(select(func.count()).select_from(links))).scalar_one())


async def reset_portal(connection: AsyncConnection) -> int:
    """Forget the portal and everything hubsync knows of HubSpot's side (links, field state,
    aliases, open conflicts): `hubsync relink --reset`, moving to another portal on purpose.
    Returns how many links were dropped. WARP's `external_ids` are rewritten by the next
    sync of each customer."""
    dropped = await count_links(connection)
    await sync_state.forget_hubspot(connection)
    await connection.execute(portal_t.delete())
    return dropped
