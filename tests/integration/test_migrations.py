"""The schema is Alembic's: migrations run both ways on both backends and match the models."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from app.store import migrate
from app.store.models import Base, SyncConfigRule, SyncJob
from tests.conftest import Database

HUBSYNC_TABLES = {
    "hubspot_sync_queue",
    "hubspot_sync_log",
    "hubspot_field_state",
    "hubspot_sync_config",
    "hubspot_sync_config_changes",
    "hubspot_webhook_events",
    "hubspot_reconciliation_runs",
    "hubspot_entity_links",
    "hubspot_company_aliases",
    "hubspot_conflicts",
    "hubspot_idempotency_keys",
    "hubspot_rate_limit_grants",
    "hubspot_rate_limit_pauses",
    "hubsync_scheduler_ticks",
    "hubsync_paused_directions",
    "hubsync_admin_audit",
}


def _drift(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"include_object": migrate.include_object, "compare_type": True},
    )
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_models_and_migrations_do_not_drift(db: Database) -> None:
    async with db.engine.connect() as connection:
        differences = await connection.run_sync(_drift)
    assert differences == [], f"models and migrations differ: {differences}"


async def test_every_table_is_created_and_at_head(db: Database) -> None:
    async with db.engine.connect() as connection:
        tables = await connection.run_sync(_tables)
    assert tables >= HUBSYNC_TABLES
    assert await migrate.current_revision(db.engine) == migrate.head_revision()


async def test_downgrade_to_base_and_upgrade_again(db: Database) -> None:
    await migrate.downgrade(db.engine, "base")
    async with db.engine.connect() as connection:
        left = await connection.run_sync(_tables)
    assert not (HUBSYNC_TABLES & left), f"left behind by downgrade: {HUBSYNC_TABLES & left}"
    assert await migrate.current_revision(db.engine) is None

    await migrate.upgrade(db.engine)
    async with db.engine.connect() as connection:
        assert await connection.run_sync(_tables) >= HUBSYNC_TABLES
        assert await connection.run_sync(_drift) == []


async def test_default_field_rules_are_loaded(db: Database) -> None:
    async with db.engine.connect() as connection:
        rows = (
            await connection.execute(select(SyncConfigRule).order_by(SyncConfigRule.position))
        ).all()
    by_field = {row.warp_field: row for row in rows}
    assert list(by_field) == [
        "ban",
        "company_name",
        "status",
        "credit_limit",
        "current_balance",
        "customer_type",
        "services.voice.enabled",
        "services.messaging.enabled",
        "services.data.enabled",
        "contact.email",
    ]
    assert (by_field["ban"].hubspot_property, by_field["ban"].authority) == ("warp_ban", "WARP")
    assert by_field["company_name"].authority == "LATEST_WINS"
    assert by_field["credit_limit"].direction == "BIDIRECTIONAL"
    assert by_field["credit_limit"].authority == "HUBSPOT"
    assert by_field["contact.email"].transform == "email_domain"
    assert all(row.enabled for row in rows)


async def test_one_pending_job_per_entity_is_enforced_by_the_schema(db: Database) -> None:
    async with db.engine.begin() as connection:
        await connection.execute(
            SyncJob.__table__.insert(), [{"entity_type": "customer", "entity_key": "c1"}]
        )
        await connection.execute(
            SyncJob.__table__.insert(),
            [{"entity_type": "customer", "entity_key": "c1", "state": "done"}],
        )
    with pytest.raises(IntegrityError):
        async with db.engine.begin() as connection:
            await connection.execute(
                SyncJob.__table__.insert(), [{"entity_type": "customer", "entity_key": "c1"}]
            )
