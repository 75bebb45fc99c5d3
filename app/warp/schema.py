"""The WARP customers table, as MISSION.md's contract describes it.

WARP owns this table; hubsync only declares it to read and write it (and, for the embedded
default and the tests, to create it). Decimals stay exact on SQLite by being stored as text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

Json = JSON().with_variant(JSONB(), "postgresql")


class ExactDecimal(TypeDecorator[Decimal]):
    """NUMERIC on PostgreSQL, TEXT on SQLite (whose REAL would drift)."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        return str(number) if dialect.name == "sqlite" else number

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


def split_table_name(qualified: str) -> tuple[str | None, str]:
    schema, _, name = qualified.rpartition(".")
    return (schema or None), name


def customers_table(qualified_name: str = "customers") -> Table:
    """The customers table under `qualified_name` (`accounts.customers` or `customers`)."""
    schema, name = split_table_name(qualified_name)
    return Table(
        name,
        MetaData(),
        Column("id", Uuid(as_uuid=False), primary_key=True),
        Column("ban", Text, nullable=False, unique=True),
        Column("company_name", Text),
        Column("customer_type", Text),
        Column("status", Text),
        Column("credit_limit", ExactDecimal()),
        Column("current_balance", ExactDecimal()),
        Column("contact", Json),
        Column("services", Json),
        Column("external_ids", Json),
        Column("created_at", DateTime(timezone=True), server_default=text("CURRENT_TIMESTAMP")),
        Column("updated_at", DateTime(timezone=True), server_default=text("CURRENT_TIMESTAMP")),
        schema=schema,
    )
