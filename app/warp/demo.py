"""Demo customers for the embedded default, so a newcomer has something to sync."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.warp.schema import customers_table


def _services(voice: bool, messaging: bool, data: bool) -> dict[str, dict[str, bool]]:
    return {
        "voice": {"enabled": voice},
        "messaging": {"enabled": messaging},
        "data": {"enabled": data},
    }


DEMO_CUSTOMERS: tuple[dict[str, Any], ...] = (
    {
        "id": "0b0e6a1c-3f57-4c1e-9a51-6f1d2c7e0001",
        "ban": "ZT-487392012",
        "company_name": "Acme Telecom Ltd",
        "customer_type": "POSTPAID",
        "status": "ACTIVE",
        "credit_limit": Decimal("10000.00"),
        "current_balance": Decimal("1234.56"),
        "contact": {"email": "billing@acme.example", "phone": "+44 20 7946 0001"},
        "services": _services(True, True, False),
    },
    {
        "id": "0b0e6a1c-3f57-4c1e-9a51-6f1d2c7e0002",
        "ban": "ZT-487392013",
        "company_name": "Globex Networks",
        "customer_type": "RESELLER",
        "status": "ACTIVE",
        "credit_limit": Decimal("250000"),
        "current_balance": Decimal("48210.10"),
        "contact": {"email": "accounts@globex.example", "phone": "+1 555 0102"},
        "services": _services(True, True, True),
    },
    {
        "id": "0b0e6a1c-3f57-4c1e-9a51-6f1d2c7e0003",
        "ban": "ZT-487392014",
        "company_name": "Initech Prepaid",
        "customer_type": "PREPAID",
        "status": "ACTIVE",
        "credit_limit": Decimal("0"),
        "current_balance": Decimal("-12.00"),
        "contact": {"email": "peter@gmail.com"},
        "services": _services(False, True, True),
    },
    {
        "id": "0b0e6a1c-3f57-4c1e-9a51-6f1d2c7e0004",
        "ban": "ZT-487392015",
        "company_name": "Umbrella Logistics",
        "customer_type": "POSTPAID",
        "status": "SUSPENDED",
        "credit_limit": Decimal("5000"),
        "current_balance": Decimal("5120.75"),
        "contact": {"email": "it@umbrella.example"},
        "services": _services(True, False, False),
    },
    {
        "id": "0b0e6a1c-3f57-4c1e-9a51-6f1d2c7e0005",
        "ban": "ZT-487392016",
        "company_name": "Stark Industries",
        "customer_type": "POSTPAID",
        "status": "CLOSED",
        "credit_limit": Decimal("1000000"),
        "current_balance": Decimal("0"),
        "contact": {"email": "noc@stark.example"},
        "services": _services(False, False, False),
    },
)


async def ensure_demo_customers(engine: AsyncEngine, table_name: str = "customers") -> int:
    """Create the customers table if it is missing and fill it with the demo rows if empty.

    Returns how many rows were inserted (0 when the table already had customers).
    """
    table = customers_table(table_name)
    async with engine.begin() as connection:
        await connection.run_sync(table.create, checkfirst=True)
        count = (await connection.execute(select(func.count()).select_from(table))).scalar_one()
        if count:
            return 0
        rows = [dict(row, external_ids={}) for row in DEMO_CUSTOMERS]
        await connection.execute(table.insert(), rows)
        return len(rows)
