"""Console sessions and the login limit, kept in the database (app/store/admin_sessions.py).

A session is a random token in the signed cookie plus a row on the server. The cookie alone
proves nothing any more: logout ends its row, "sign out everywhere" ends every row, and a
password change ends every cookie (each carries a fingerprint of the password). A cookie
copied before any of these opens nothing afterwards, in any process.

The login limit counts attempts per client address (the real client's behind a trusted
proxy: HUBSYNC_TRUSTED_PROXIES) and per login name, in the database, so that several
processes share it and one guesser behind the Ingress does not lock out every operator.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from app.admin.access import (
    LOGIN_TRIES_PER_MINUTE,
    ONE_TIME_LINK_SECONDS,
    SESSION_SECONDS,
    SessionSigner,
    clean_name,
)
from app.store import admin_login_links as links
from app.store import admin_sessions as store

LOGIN_WINDOW = timedelta(minutes=1)


def _now() -> datetime:
    return datetime.now(UTC)


async def start_session(
    engine: AsyncEngine, signer: SessionSigner, name: str, *, client: str
) -> str:
    """A new session for the name typed at login; the cookie's value."""
    token = secrets.token_urlsafe(32)
    cookie = signer.issue(name, token)
    async with engine.begin() as connection:
        await store.open_session(
            connection,
            token,
            who=f"admin:{clean_name(name)}",
            client=client,
            now=_now(),
            lifetime=timedelta(seconds=SESSION_SECONDS),
        )
    return cookie


async def mint_login_link(engine: AsyncEngine) -> str:
    """A new one-time login link's token (`hubsync admin link`), valid for an hour; any
    process of the service redeems it, once."""
    token = secrets.token_urlsafe(32)
    async with engine.begin() as connection:
        await links.mint_link(
            connection, token, now=_now(), lifetime=timedelta(seconds=ONE_TIME_LINK_SECONDS)
        )
    return token


async def redeem_login_link(engine: AsyncEngine, token: str) -> bool:
    if not token:
        return False
    async with engine.begin() as connection:
        return await links.redeem_link(connection, token, now=_now())


async def is_live(engine: AsyncEngine, token: str) -> bool:
    async with engine.connect() as connection:
        return await store.session_is_live(connection, token, now=_now())


async def end_session(engine: AsyncEngine, token: str) -> None:
    async with engine.begin() as connection:
        await store.revoke_session(connection, token, now=_now())


async def end_every_session(engine: AsyncEngine) -> int:
    async with engine.begin() as connection:
        return await store.revoke_all_sessions(connection, now=_now())


@dataclass
class LoginAttempt:
    """One login try, counted against its client and its name until it succeeds."""

    engine: AsyncEngine
    rows: list[int]

    async def succeeded(self) -> None:
        async with self.engine.begin() as connection:
            await store.forget_attempt(connection, self.rows)


def attempt_keys(client: str, name: str | None) -> list[str]:
    keys = [f"client:{client}"]
    if name is not None:
        keys.append(f"name:{clean_name(name).lower()}")
    return keys


async def begin_login(
    engine: AsyncEngine,
    *,
    client: str,
    name: str | None,
    per_minute: int = LOGIN_TRIES_PER_MINUTE,
) -> LoginAttempt | None:
    """The attempt, or None when its client or its name has had `per_minute` attempts that
    did not succeed in the last minute (the refused one is not counted)."""
    keys = attempt_keys(client, name)
    now = _now()
    async with engine.begin() as connection:
        rows = await store.record_attempt(connection, keys, now=now, window=LOGIN_WINDOW)
    async with engine.connect() as connection:
        seen = await store.attempts_within(connection, keys, now=now, window=LOGIN_WINDOW)
    attempt = LoginAttempt(engine, rows)
    if seen > per_minute:
        await attempt.succeeded()  # not a try at the password: forgotten
        return None
    return attempt
