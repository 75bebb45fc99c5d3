"""The field rules in `hubspot_sync_config`, and the audit trail of every change to them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.sql import postgres_sql
from app.store.models import SyncConfigChange, SyncConfigRule, table_of
from app.sync.core.rules import RULE_FIELDS, FieldRule, rule_from_dict, rule_to_dict, validate_rules

config_table = table_of(SyncConfigRule)
changes_table = table_of(SyncConfigChange)


async def load_rules(connection: AsyncConnection) -> tuple[FieldRule, ...]:
    """The rules in order. Every sync batch loads them (a change applies from the next
    batch); on PostgreSQL straight from asyncpg, and each rule parsed once while its row
    stays the same."""
    if connection.dialect.name == "postgresql":
        found = await _LOAD_RULES_POSTGRES.fetch(connection)
        rows = [dict(row) for row in found]
    else:
        rows = [dict(row._mapping) for row in await connection.execute(_LOAD_RULES)]
    return tuple(_parsed(row) for row in rows)


_LOAD_RULES = select(*(config_table.c[c] for c in RULE_FIELDS)).order_by(
    config_table.c.position, config_table.c.id
)
_LOAD_RULES_POSTGRES = postgres_sql(_LOAD_RULES)
_PARSED: dict[tuple[Any, ...], FieldRule] = {}
_PARSED_KEPT = 1_000  # rows; a deployment has tens of rules


def _parsed(row: dict[str, Any]) -> FieldRule:
    key = tuple(
        tuple(sorted(value.items())) if isinstance(value, dict) else value for value in row.values()
    )
    if (rule := _PARSED.get(key)) is None:
        rule = rule_from_dict(row)  # raises on a row no rule can come from: not kept
        if len(_PARSED) >= _PARSED_KEPT:
            _PARSED.clear()
        _PARSED[key] = rule
    return rule


async def replace_rules(
    connection: AsyncConnection, rules: Sequence[FieldRule], changed_by: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate and store a whole new rule set; returns (before, after) as recorded."""
    validate_rules(rules)
    before = [rule_to_dict(rule) for rule in await load_rules(connection)]
    after = [rule_to_dict(rule) for rule in rules]
    stamp = datetime.now(UTC)
    await connection.execute(delete(config_table))
    await connection.execute(
        config_table.insert(),
        [
            {
                **stored,
                "position": position,
                "updated_at": stamp,
                "updated_by": changed_by,
            }
            for position, stored in enumerate(after)
        ],
    )
    await connection.execute(
        changes_table.insert().values(
            changed_by=changed_by, before=before, after=after, created_at=stamp
        )
    )
    return before, after


async def config_history(connection: AsyncConnection, limit: int = 50) -> list[dict[str, Any]]:
    rows = await connection.execute(
        select(changes_table).order_by(changes_table.c.id.desc()).limit(limit)
    )
    return [
        {
            "id": row.id,
            "changed_by": row.changed_by,
            "changed_at": row.created_at.isoformat() if row.created_at else None,
            "before": row.before,
            "after": row.after,
        }
        for row in rows
    ]
