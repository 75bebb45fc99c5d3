"""Links in bulk: one row per customer, a waiting company joins its customer, re-pointing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from app.store import sync_state
from app.store.models import EntityLink, SyncLog
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


async def test_field_states_and_log_rows_in_one_statement_keep_every_value(db: Database) -> None:
    # On PostgreSQL many rows go as one array per column (`insert_rows`): the upsert must keep
    # blanks, odd text, times and JSON as they were, and update only the named columns.
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    odd = "quote ' comma , brace { } backslash \\ newline \n and ü"
    async with db.engine.begin() as connection:
        await sync_state.save_field_states(
            connection,
            [
                {
                    "warp_customer_id": "c1",
                    "field": "company_name",
                    "warp_value": odd,
                    "hubspot_value": None,
                    "base_value": "",
                    "warp_changed_at": when,
                },
                {
                    "warp_customer_id": "c2",
                    "field": "company_name",
                    "warp_value": "NULL",
                    "hubspot_value": "{}",
                    "base_value": None,
                    "warp_changed_at": None,
                },
            ],
        )
        await sync_state.note_warp_values(
            connection,
            [
                {
                    "warp_customer_id": "c2",
                    "field": "company_name",
                    "hubspot_property": "name",
                    "warp_value": "Renamed",
                    "warp_changed_at": when,
                }
            ],
        )
        await sync_state.write_log(
            connection,
            [
                {
                    "job_id": 7,
                    "warp_customer_id": "c1",
                    "source": "api",
                    "direction": "to_hubspot",
                    "outcome": "updated",
                    "changes": [{"field": "company_name", "new": odd}],
                },
                {
                    "job_id": 8,
                    "warp_customer_id": "c2",
                    "source": "api",
                    "direction": "to_hubspot",
                    "outcome": "failed",
                    "changes": None,
                    "error": "refused",
                },
            ],
        )
    async with db.engine.connect() as connection:
        memory = await sync_state.field_memory(connection, ["c1", "c2"])
        logged = (
            await connection.execute(
                select(SyncLog.job_id, SyncLog.changes, SyncLog.error).order_by(SyncLog.job_id)
            )
        ).all()
    first, second = memory["c1"]["company_name"], memory["c2"]["company_name"]
    assert (first.warp_value, first.hubspot_value, first.base_value) == (odd, None, "")
    assert first.warp_changed_at == when
    # The second upsert set WARP's value and time and left the rest alone (the property too).
    assert (second.warp_value, second.hubspot_value, second.base_value) == ("Renamed", "{}", None)
    assert (second.warp_changed_at, second.hubspot_property) == (when, None)
    assert [tuple(row) for row in logged] == [
        (7, [{"field": "company_name", "new": odd}], None),
        (8, None, "refused"),
    ]


async def test_a_batchs_notes_on_its_links_in_one_update(db: Database) -> None:
    """In sync or held by a pause, read, written: each link gets what applies to it and keeps
    what was not given."""
    earlier = datetime(2026, 1, 1, tzinfo=UTC)
    read, written = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC)
    async with db.engine.begin() as connection:
        await sync_state.save_active_links(
            connection, [("c1", "501", "ZT-1"), ("c2", "502", "ZT-2"), ("c3", "503", "ZT-3")]
        )
        await sync_state.note_synced(connection, [("c3", True, earlier, earlier)])
    async with db.engine.connect() as connection:
        synced_before = (
            await connection.execute(
                select(EntityLink.last_synced_at).where(EntityLink.warp_customer_id == "c3")
            )
        ).scalar_one()
    async with db.engine.begin() as connection:
        await sync_state.note_synced(
            connection,
            [
                ("c1", True, read, None),  # in sync, its company read
                ("c2", False, None, written),  # a pause holds a write back: not in sync
                ("c3", False, None, None),  # nothing to note: left as it was
            ],
        )
    async with db.engine.connect() as connection:
        rows = {
            row.warp_customer_id: row
            for row in await connection.execute(
                select(
                    EntityLink.warp_customer_id,
                    EntityLink.last_synced_at,
                    EntityLink.hubspot_read_at,
                    EntityLink.hubspot_written_at,
                )
            )
        }

    def utc(value: datetime | None) -> datetime | None:  # SQLite gives naive UTC back
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    assert rows["c1"].last_synced_at is not None
    assert (utc(rows["c1"].hubspot_read_at), rows["c1"].hubspot_written_at) == (read, None)
    assert rows["c2"].last_synced_at is None
    assert (rows["c2"].hubspot_read_at, utc(rows["c2"].hubspot_written_at)) == (None, written)
    assert rows["c3"].last_synced_at == synced_before
    assert utc(rows["c3"].hubspot_read_at) == utc(rows["c3"].hubspot_written_at) == earlier
