"""Links in bulk: one row per customer, a waiting company joins its customer, re-pointing."""

from __future__ import annotations

from sqlalchemy import select

from app.store import sync_state
from app.store.models import EntityLink
from tests.conftest import Database


async def all_links(db: Database) -> set[tuple[str | None, str | None, str]]:
    async with db.engine.connect() as connection:
        rows = await connection.execute(
            select(EntityLink.warp_customer_id, EntityLink.hubspot_company_id, EntityLink.state)
        )
        return {tuple(row) for row in rows}  # type: ignore[misc]


async def test_save_active_links_joins_waiting_companies_and_repoints(db: Database) -> None:
    async with db.engine.begin() as connection:
        # A HubSpot company that arrived before its WARP customer, and a deleted old link.
        await sync_state.save_link(
            connection, customer_id=None, company_id="500", ban="ZT-1", state="unmatched"
        )
        await sync_state.save_link(
            connection, customer_id="c2", company_id="600", ban="ZT-2", state="deleted"
        )
        await sync_state.save_active_links(
            connection, [("c1", "500", "ZT-1"), ("c2", "601", "ZT-2"), ("c3", "700", "ZT-3")]
        )
    assert await all_links(db) == {
        ("c1", "500", "active"),
        ("c2", "601", "active"),
        ("c3", "700", "active"),
    }

    async with db.engine.begin() as connection:  # the same again changes nothing
        await sync_state.save_active_links(connection, [("c1", "500", "ZT-1")])
    assert len(await all_links(db)) == 3
