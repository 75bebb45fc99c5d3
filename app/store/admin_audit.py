"""The operators' audit trail (`hubsync_admin_audit`): every action taken in the console or
through the operator API — pause, resume, resolve, re-sync, rule change, login — with who and
when. Written in the same transaction as the action where there is one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import AdminAuditEntry, table_of

audit_table = table_of(AdminAuditEntry)
MAX_TARGET_CHARS = 255


@dataclass(frozen=True)
class AuditEntry:
    id: int
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any] | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
            "at": self.created_at.isoformat(),
        }


async def record_action(
    connection: AsyncConnection,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await connection.execute(
        audit_table.insert().values(
            actor=actor[:128],
            action=action[:64],
            target=target[:MAX_TARGET_CHARS] if target else None,
            detail=detail,
            created_at=datetime.now(UTC),
        )
    )


async def recent_actions(
    connection: AsyncConnection,
    *,
    limit: int = 50,
    before_id: int | None = None,
    action_prefix: str | None = None,
) -> list[AuditEntry]:
    """Newest first; page with `before_id` (the last id of the previous page)."""
    query = select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(audit_table.c.id < before_id)
    if action_prefix is not None:
        query = query.where(audit_table.c.action.startswith(action_prefix, autoescape=True))
    rows = await connection.execute(query)
    return [
        AuditEntry(
            row.id,
            row.actor,
            row.action,
            row.target,
            row.detail,
            row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC),
        )
        for row in rows
    ]
