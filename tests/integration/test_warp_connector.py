"""The SQL WARP connector on both backends: reads, JSON-path writes that keep other keys,
batched writes, and iteration."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from app.warp.connector import Refusal, SqlWarpConnector, WarpWrite
from app.warp.schema import customers_table
from tests.conftest import Database


async def add(db: Database, **values: object) -> str:
    customer_id = str(uuid.uuid4())
    row = {
        "id": customer_id,
        "ban": f"ZT-{uuid.uuid4().int % 10**9}",
        "company_name": "Conn Co",
        "credit_limit": Decimal("10000.00"),
        "contact": {"email": "a@conn.example", "phone": "+1"},
        "services": {"voice": {"enabled": True, "plan": "gold"}},
        "external_ids": {"billing": "B-1"},
        **values,
    }
    async with db.engine.begin() as connection:
        await connection.execute(customers_table(db.customers_table).insert().values(**row))
    return customer_id


async def test_reads_decode_json_and_keep_decimals_exact(db: Database) -> None:
    warp = SqlWarpConnector(db.engine, db.customers_table)
    customer_id = await add(db, credit_limit=Decimal("12345678901234.56"))
    [record] = (await warp.fetch_customers([customer_id, "not-a-uuid"])).values()
    assert record["credit_limit"] == Decimal("12345678901234.56")
    assert record["contact"] == {"email": "a@conn.example", "phone": "+1"}
    assert await warp.existing_ids([customer_id, str(uuid.uuid4())]) == {customer_id}
    by_ban = await warp.fetch_customers_by_ban([record["ban"]])
    assert by_ban[record["ban"]]["id"] == customer_id


async def test_json_path_writes_keep_every_other_key(db: Database) -> None:
    warp = SqlWarpConnector(db.engine, db.customers_table)
    customer_id = await add(db)
    await warp.write_fields(
        customer_id,
        {
            "services.voice.enabled": False,
            "services.data.enabled": True,
            "credit_limit": Decimal("5"),
        },
        hubspot_company_id="9001",
    )
    record = (await warp.fetch_customers([customer_id]))[customer_id]
    assert record["services"] == {
        "voice": {"enabled": False, "plan": "gold"},
        "data": {"enabled": True},
    }
    assert record["external_ids"] == {"billing": "B-1", "hubspot_company_id": "9001"}
    assert record["credit_limit"] == Decimal("5")


async def test_write_many_writes_each_row_and_returns_the_ones_it_could_not(
    db: Database,
) -> None:
    warp = SqlWarpConnector(db.engine, db.customers_table)
    first, second = await add(db), await add(db)
    refusals = await warp.write_many(
        [
            WarpWrite(first, {}, hubspot_company_id="1"),
            WarpWrite(second, {"company_name": "Renamed"}, hubspot_company_id="2"),
        ]
    )
    assert refusals == {}
    records = await warp.fetch_customers([first, second])
    assert records[first]["external_ids"]["hubspot_company_id"] == "1"
    assert (
        records[second]["company_name"],
        records[second]["external_ids"]["hubspot_company_id"],
    ) == ("Renamed", "2")

    gone = str(uuid.uuid4())
    refusals = await warp.write_many(
        [WarpWrite(first, {"company_name": "Written"}), WarpWrite(gone, {"status": "X"})]
    )
    assert list(refusals) == [gone]
    assert refusals[gone].kind is Refusal.MISSING
    assert (await warp.fetch_customers([first]))[first]["company_name"] == "Written"


async def test_write_many_is_compare_and_set_on_the_values_read(db: Database) -> None:
    warp = SqlWarpConnector(db.engine, db.customers_table)
    customer_id = await add(db)
    read = (await warp.fetch_customers([customer_id]))[customer_id]
    await warp.write_fields(customer_id, {"company_name": "Changed Meanwhile"})

    refusals = await warp.write_many(
        [
            WarpWrite(
                customer_id,
                {"company_name": "From HubSpot"},
                expected={"company_name": read["company_name"]},
            )
        ]
    )

    assert refusals[customer_id].kind is Refusal.CHANGED
    assert "company_name" in refusals[customer_id].reason
    assert (await warp.fetch_customers([customer_id]))[customer_id]["company_name"] == (
        "Changed Meanwhile"
    )


async def test_unknown_columns_are_refused(db: Database) -> None:
    warp = SqlWarpConnector(db.engine, db.customers_table)
    customer_id = await add(db)
    with pytest.raises(ValueError, match="not writable"):
        await warp.write_fields(customer_id, {"id": str(uuid.uuid4())})
    with pytest.raises(ValueError, match="not writable"):
        await warp.write_fields(customer_id, {"password": "x"})


async def test_iteration_visits_every_customer_once(db: Database) -> None:
    warp = SqlWarpConnector(db.engine, db.customers_table)
    ids = {await add(db) for _ in range(7)}
    seen = [record["id"] async for batch in warp.iter_customers(batch_size=3) for record in batch]
    assert sorted(seen) == sorted(ids)
