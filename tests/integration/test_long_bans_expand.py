"""Bans (and reconciliation items' ids) longer than 64 characters, stored without changing a
column the previous release reads (migration 0012 is an expand; app/store/widened.py).

- On PostgreSQL, the previous release's statements, prepared before the migration as its
  pooled connections hold them, still run after it: no column they read changed type.
- This code stores and finds a long ban; the previous release, reading the old columns, sees
  short bans as before and no ban (never a cut one) for a long one.
- A ban the previous release writes while both run is the one this code reads.
"""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import select, text

from app.store import migrate, reconciliation, sync_state
from app.store.db import create_engine
from tests.conftest import Database, _libpq

LONG_BAN = "ZT-" + "7" * 97  # 100 characters
SHORT_BAN = "ZT-100200300"

# What 0.1.0 (revision 0007) runs on these tables, as SQLAlchemy compiles it from its models:
# its columns named one by one, with their types then.
PREVIOUS_LINK_READ = (
    "SELECT hubspot_entity_links.id, hubspot_entity_links.warp_customer_id, "
    "hubspot_entity_links.hubspot_company_id, hubspot_entity_links.warp_ban, "
    "hubspot_entity_links.state, hubspot_entity_links.deleted_at, "
    "hubspot_entity_links.state_changed_at, hubspot_entity_links.last_synced_at, "
    "hubspot_entity_links.hubspot_read_at, hubspot_entity_links.created_at, "
    "hubspot_entity_links.updated_at FROM hubspot_entity_links "
    "WHERE hubspot_entity_links.warp_customer_id = ANY($1::VARCHAR[]) "
    "ORDER BY hubspot_entity_links.warp_customer_id"
)
PREVIOUS_LINK_WRITE = (
    "INSERT INTO hubspot_entity_links (warp_customer_id, hubspot_company_id, warp_ban, state) "
    "VALUES ($1::VARCHAR, $2::VARCHAR, $3::VARCHAR, 'active')"
)
PREVIOUS_ITEM_READ = (
    "SELECT hubspot_reconciliation_items.id, hubspot_reconciliation_items.run_id, "
    "hubspot_reconciliation_items.category, hubspot_reconciliation_items.warp_customer_id, "
    "hubspot_reconciliation_items.hubspot_company_id, hubspot_reconciliation_items.warp_ban, "
    "hubspot_reconciliation_items.fields, hubspot_reconciliation_items.action, "
    "hubspot_reconciliation_items.detail, hubspot_reconciliation_items.job_id "
    "FROM hubspot_reconciliation_items WHERE hubspot_reconciliation_items.run_id = $1::BIGINT "
    "ORDER BY hubspot_reconciliation_items.id"
)
PREVIOUS_ITEM_WRITE = (
    "INSERT INTO hubspot_reconciliation_items "
    "(run_id, category, warp_customer_id, hubspot_company_id, warp_ban, action) "
    "VALUES ($1::BIGINT, 'orphan', $2::VARCHAR, $3::VARCHAR, $4::VARCHAR, 'review')"
)


@pytest.mark.postgres
async def test_the_previous_release_prepared_statements_run_on_after_the_migration(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url)
    old = None
    try:
        await migrate.downgrade(engine, "0011")
        old = await asyncpg.connect(_libpq(postgres_url))
        statements = {
            sql: await old.prepare(sql)
            for sql in (
                PREVIOUS_LINK_READ,
                PREVIOUS_LINK_WRITE,
                PREVIOUS_ITEM_READ,
                PREVIOUS_ITEM_WRITE,
            )
        }
        await statements[PREVIOUS_LINK_WRITE].fetch("c-old-1", "1001", SHORT_BAN)
        await statements[PREVIOUS_ITEM_WRITE].fetch(7, "c-old-1", "1001", SHORT_BAN)
        assert len(await statements[PREVIOUS_LINK_READ].fetch(["c-old-1"])) == 1

        await migrate.upgrade(engine)

        # The same prepared statements, on the same connection: no "cached plan must not
        # change result type".
        assert len(await statements[PREVIOUS_LINK_READ].fetch(["c-old-1"])) == 1
        assert len(await statements[PREVIOUS_ITEM_READ].fetch(7)) == 1
        await statements[PREVIOUS_LINK_WRITE].fetch("c-old-2", "1002", "ZT-2")
        await statements[PREVIOUS_ITEM_WRITE].fetch(7, "c-old-2", "1002", "ZT-2")
        async with engine.begin() as connection:
            await sync_state.save_link(
                connection, customer_id="c-new-long", company_id="1003", ban=LONG_BAN
            )
            await sync_state.save_link(
                connection, customer_id="c-new-short", company_id="1004", ban=SHORT_BAN
            )
            await reconciliation.add_items(
                connection,
                7,
                [{"category": "orphan", "hubspot_company_id": "1003", "warp_ban": LONG_BAN}],
            )
        seen = {
            row["warp_customer_id"]: row["warp_ban"]
            for row in await statements[PREVIOUS_LINK_READ].fetch(
                ["c-old-1", "c-old-2", "c-new-long", "c-new-short"]
            )
        }
        # The previous release sees every short ban, and no ban for the long one.
        assert seen == {
            "c-old-1": SHORT_BAN,
            "c-old-2": "ZT-2",
            "c-new-long": None,
            "c-new-short": SHORT_BAN,
        }
        items = await statements[PREVIOUS_ITEM_READ].fetch(7)
        assert [(i["hubspot_company_id"], i["warp_ban"]) for i in items] == [
            ("1001", SHORT_BAN),
            ("1002", "ZT-2"),
            ("1003", None),
        ]

        # This code reads both releases' rows whole.
        async with engine.connect() as connection:
            found = await sync_state.links_by_customer(
                connection, ["c-old-1", "c-old-2", "c-new-long", "c-new-short"]
            )
            page = await reconciliation.items_page(connection, 7)
        assert {key: link.warp_ban for key, link in found.items()} == {
            "c-old-1": SHORT_BAN,
            "c-old-2": "ZT-2",
            "c-new-long": LONG_BAN,
            "c-new-short": SHORT_BAN,
        }
        assert [i["warp_ban"] for i in page] == [SHORT_BAN, "ZT-2", LONG_BAN]
    finally:
        if old is not None:
            await old.close()
        await engine.dispose()


async def test_a_long_ban_is_stored_whole_and_found_by_it(db: Database) -> None:
    long_id = "c-" + "9" * 80  # a reconciliation item's ids are text too
    async with db.engine.begin() as connection:
        await sync_state.save_link(
            connection, customer_id=None, company_id="2001", ban=LONG_BAN, state="unmatched"
        )
        await sync_state.save_link(
            connection, customer_id=None, company_id="2002", ban=SHORT_BAN, state="unmatched"
        )
        await sync_state.save_active_links(connection, [("c-long", "2003", "B" * 200)])
        await reconciliation.add_items(
            connection,
            9,
            [{"category": "error", "warp_customer_id": long_id, "warp_ban": "B" * 257}],
        )
    async with db.engine.connect() as connection:
        unmatched = await sync_state.unmatched_links_by_ban(
            connection, [LONG_BAN, SHORT_BAN, LONG_BAN[:64]]
        )
        by_customer = await sync_state.links_by_customer(connection, ["c-long"])
        [item] = await reconciliation.items_page(connection, 9)
        old_columns = (
            await connection.execute(
                select(sync_state.links.c.hubspot_company_id, sync_state.links.c.warp_ban)
            )
        ).all()
    assert {ban: link.hubspot_company_id for ban, link in unmatched.items()} == {
        LONG_BAN: "2001",
        SHORT_BAN: "2002",
    }
    assert by_customer["c-long"].warp_ban == "B" * 200
    assert (item["warp_customer_id"], item["warp_ban"]) == (long_id, "B" * 257)
    # The varchar(64) column holds a ban only when it fits, never a cut one.
    assert dict(old_columns) == {"2001": None, "2002": SHORT_BAN, "2003": None}


async def test_a_ban_the_previous_release_writes_is_the_one_read(db: Database) -> None:
    """While both releases run, the previous one may rewrite a link's ban in the old column
    only: what it wrote wins over what the text column still holds."""
    async with db.engine.begin() as connection:
        await sync_state.save_link(
            connection, customer_id=None, company_id="3001", ban=LONG_BAN, state="unmatched"
        )
        await connection.execute(
            text("UPDATE hubspot_entity_links SET warp_ban = :ban WHERE hubspot_company_id = :id"),
            {"ban": SHORT_BAN, "id": "3001"},
        )
    async with db.engine.connect() as connection:
        by_company = await sync_state.links_by_company(connection, ["3001"])
        by_long = await sync_state.unmatched_links_by_ban(connection, [LONG_BAN])
        by_short = await sync_state.unmatched_links_by_ban(connection, [SHORT_BAN])
    assert by_company["3001"].warp_ban == SHORT_BAN
    assert by_long == {}
    assert list(by_short) == [SHORT_BAN]
