"""One-time console login links (`hubsync admin link`), in the database so that the command,
a process of its own, mints a link the running service accepts. Only a hash of each token is
stored: reading the table opens no console. Times are written here (UTC), as for sessions."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Table, delete, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.admin_sessions import session_key
from app.store.models import AdminLoginLink

LINKS: Table = AdminLoginLink.__table__  # type: ignore[assignment]


async def mint_link(
    connection: AsyncConnection, token: str, *, now: datetime, lifetime: timedelta
) -> None:
    await connection.execute(delete(LINKS).where(LINKS.c.expires_at < now))
    await connection.execute(
        LINKS.insert().values(id=session_key(token), created_at=now, expires_at=now + lifetime)
    )


async def redeem_link(connection: AsyncConnection, token: str, *, now: datetime) -> bool:
    """True once for a live link: of two processes redeeming it at once, one wins."""
    used = await connection.execute(
        update(LINKS)
        .where(
            LINKS.c.id == session_key(token),
            LINKS.c.used_at.is_(None),
            LINKS.c.expires_at > now,
        )
        .values(used_at=now)
    )
    return (used.rowcount or 0) == 1
