"""The WARP customers table as the database really has it: its columns and their kinds.

Read by reflection (not from `schema.py`'s declaration), so `/readyz` notices a wrong
WARP_CUSTOMERS_TABLE and `PUT /v1/sync/config` refuses rules the real table cannot hold.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Numeric, String, Uuid, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import NoSuchTableError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine

from app.warp.schema import split_table_name


class TableMissingError(LookupError):
    """The configured customers table does not exist (or this user cannot see it)."""


def column_kind(column_type: TypeEngine[object]) -> str:
    """'json', 'boolean', 'number', 'text' or 'other' (dates, uuids, binaries, …)."""
    if isinstance(column_type, JSON):
        return "json"
    if isinstance(column_type, Boolean):
        return "boolean"
    if isinstance(column_type, Numeric):  # Integer, Float and Numeric alike
        return "number"
    if isinstance(column_type, Uuid):
        return "other"
    if isinstance(column_type, String):
        return "text"
    name = type(column_type).__name__.upper()
    if name in ("JSONB", "JSON"):
        return "json"
    if name in ("INTEGER", "BIGINT", "SMALLINT", "DOUBLE_PRECISION", "REAL"):
        return "number"
    return "other"


async def real_columns(engine: AsyncEngine, qualified_name: str) -> dict[str, str]:
    """Column name -> kind of the table as it exists; TableMissingError when it does not."""
    schema, name = split_table_name(qualified_name)

    def reflect(connection: Connection) -> dict[str, str]:
        try:
            columns = inspect(connection).get_columns(name, schema=schema)
        except NoSuchTableError:
            columns = []
        return {str(column["name"]): column_kind(column["type"]) for column in columns}

    async with engine.connect() as connection:
        found = await connection.run_sync(reflect)
    if not found:
        raise TableMissingError(f"the WARP customers table {qualified_name} does not exist")
    return found
