"""`hubsync jobs retry --customer ID`, called as the command does, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.cli.common import CommandError
from app.cli.jobs import retry_jobs
from app.settings import Settings
from app.store.queue import QueueRepository
from app.warp.schema import customers_table
from tests.conftest import Database


async def add_customer(db: Database) -> str:
    customer_id = str(uuid.uuid4())
    async with db.engine.begin() as connection:
        await connection.execute(
            customers_table(db.customers_table)
            .insert()
            .values(
                id=customer_id,
                ban="ZT-100000001",
                company_name="Customer Ltd",
                customer_type="POSTPAID",
                status="ACTIVE",
                credit_limit=Decimal("1000"),
                current_balance=Decimal("0"),
                contact={},
                services={},
                external_ids={},
                updated_at=datetime.now(UTC),
            )
        )
    return customer_id


async def test_a_customer_id_in_another_uuid_spelling_is_queued_by_its_own_id(
    db: Database,
) -> None:
    customer_id = await add_customer(db)
    settings = Settings.from_env(db.env, env_file=None)

    result = await retry_jobs(settings, failed=False, customers=[customer_id.upper()])

    [job_id] = result["queued"]
    job = await QueueRepository(db.engine).get(job_id)
    assert job is not None
    assert job.entity_key == customer_id


async def test_an_unknown_customer_is_refused_by_name(db: Database) -> None:
    settings = Settings.from_env(db.env, env_file=None)
    missing = str(uuid.uuid4())
    with pytest.raises(CommandError, match=f"{missing}.*not-a-uuid|not-a-uuid.*{missing}"):
        await retry_jobs(settings, failed=False, customers=[missing, "not-a-uuid"])
