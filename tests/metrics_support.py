"""Reading `/metrics` the way Prometheus does: with prometheus-client's own parser."""

from __future__ import annotations

import uuid
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from app.warp.schema import customers_table
from tests.conftest import Database

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_exposition(text: str) -> Samples:
    """Every sample by (name, sorted labels); the parser raises on a malformed exposition."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample, found), value in samples.items()
        if sample == name and wanted <= set(found)
    )


async def add_customers(db: Database, count: int) -> list[str]:
    rows = [
        {
            "id": str(uuid.uuid4()),
            "ban": f"ZT-{700000000 + n}",
            "company_name": f"Metrics Customer {n}",
            "customer_type": "POSTPAID",
            "status": "ACTIVE",
            "credit_limit": Decimal(1000 + n),
            "current_balance": Decimal("0"),
            "contact": {"email": f"billing@metrics{n}.example"},
            "services": {"voice": {"enabled": True}},
            "external_ids": {},
        }
        for n in range(count)
    ]
    async with db.engine.begin() as connection:
        await connection.execute(customers_table(db.customers_table).insert(), rows)
    return [row["id"] for row in rows]
