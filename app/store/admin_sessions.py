"""The console's server-side state: its sessions (`hubsync_admin_sessions`) and its login
limit (`hubsync_admin_login_failures`), in the database so that every process of the service
sees the same — a session ended in one process is ended in all, and a client guessing
passwords meets one limit however its tries are spread over processes.

Times are written by this module (UTC), never by the database, so that comparisons mean the
same on SQLite (which stores them as text) and on PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Table, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import AdminLoginFailure, AdminSession

SESSIONS: Table = AdminSession.__table__  # type: ignore[assignment]
FAILURES: Table = AdminLoginFailure.__table__  # type: ignore[assignment]


def session_key(token: str) -> str:
    """What is stored for a session: a hash of its token, so that reading the table does not
    give anyone a session (the cookie holds the token, signed by HUBSYNC_SECRET_KEY)."""
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(
    connection: AsyncConnection,
    token: str,
    *,
    who: str,
    client: str,
    now: datetime,
    lifetime: timedelta,
) -> None:
    await connection.execute(delete(SESSIONS).where(SESSIONS.c.expires_at < now))
    await connection.execute(
        SESSIONS.insert().values(
            id=session_key(token),
            who=who[:128],
            client=client[:255],
            created_at=now,
            expires_at=now + lifetime,
        )
    )


async def session_is_live(connection: AsyncConnection, token: str, *, now: datetime) -> bool:
    found = await connection.execute(
        select(SESSIONS.c.id).where(
            SESSIONS.c.id == session_key(token),
            SESSIONS.c.revoked_at.is_(None),
            SESSIONS.c.expires_at > now,
        )
    )
    return found.first() is not None


async def revoke_session(connection: AsyncConnection, token: str, *, now: datetime) -> None:
    await connection.execute(
        update(SESSIONS)
        .where(SESSIONS.c.id == session_key(token), SESSIONS.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_all_sessions(connection: AsyncConnection, *, now: datetime) -> int:
    """End every session still live; how many there were."""
    ended = await connection.execute(
        update(SESSIONS)
        .where(SESSIONS.c.revoked_at.is_(None), SESSIONS.c.expires_at > now)
        .values(revoked_at=now)
    )
    return ended.rowcount or 0


# -- the login limit ----------------------------------------------------------------------


async def record_attempt(
    connection: AsyncConnection, keys: Sequence[str], *, now: datetime, window: timedelta
) -> list[int]:
    """One attempt against each key; the rows written. Committed before it is counted
    (`attempts_within`), so that tries running at once in several processes see each other."""
    await connection.execute(delete(FAILURES).where(FAILURES.c.failed_at <= now - window))
    ids = []
    for key in keys:
        written = await connection.execute(
            FAILURES.insert().values(key=key[:255], failed_at=now).returning(FAILURES.c.id)
        )
        ids.append(int(written.scalar_one()))
    return ids


async def attempts_within(
    connection: AsyncConnection, keys: Sequence[str], *, now: datetime, window: timedelta
) -> int:
    """The most attempts any of `keys` has had in the window."""
    counts = await connection.execute(
        select(func.count())
        .select_from(FAILURES)
        .where(and_(FAILURES.c.key.in_(list(keys)), FAILURES.c.failed_at > now - window))
        .group_by(FAILURES.c.key)
    )
    return max((int(count) for (count,) in counts), default=0)


async def forget_attempt(connection: AsyncConnection, ids: Sequence[int]) -> None:
    """An attempt that does not count: it succeeded, or it was refused by the limit itself."""
    if ids:
        await connection.execute(delete(FAILURES).where(FAILURES.c.id.in_(list(ids))))
