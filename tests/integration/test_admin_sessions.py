"""Console sessions live on the server: a cookie copied before logout, before "sign out
everywhere" or before a password change opens nothing afterwards. The login limit counts per
client address and per login name, in the database, so every process of the service shares
it (here: two apps on one database, each with its own clients' addresses)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx

from app.admin.access import SESSION_COOKIE
from app.main import create_app
from tests.conftest import Database
from tests.integration.admin_support import PASSWORD, admin_settings, csrf_of, sign_in
from tests.support import with_lifespan_state


@asynccontextmanager
async def started(app: Any) -> AsyncIterator[Any]:
    async with app.router.lifespan_context(app) as state:
        yield with_lifespan_state(app, state or {})


def client_from(app: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://hubsync.test")


async def log_in(client: httpx.AsyncClient, name: str, password: str) -> int:
    page = await client.get("/admin/login")
    answer = await client.post(
        "/admin/login",
        data={"csrftoken": csrf_of(page), "password": password, "name": name, "next": "/admin/"},
    )
    return answer.status_code


async def test_a_cookie_copied_before_logout_opens_nothing_after_it(db: Database) -> None:
    async with started(create_app(admin_settings(db))) as app:
        async with client_from(app, "198.51.100.1") as operator:
            assert (await sign_in(operator)).status_code == 303
            copied = operator.cookies[SESSION_COOKIE]
            token = csrf_of(await operator.get("/admin/"))
            assert (await operator.post("/admin/logout", data={"csrftoken": token})).is_redirect
        async with client_from(app, "198.51.100.2") as thief:
            thief.cookies.set(SESSION_COOKIE, copied, path="/admin")
            page = await thief.get("/admin/")
            action = await thief.post("/admin/directions/outbound/pause", data={})
    assert page.status_code == 303
    assert page.headers["location"].startswith("/admin/login")
    assert action.status_code in (401, 403)


async def test_sign_out_everywhere_ends_every_session(db: Database) -> None:
    async with (
        started(create_app(admin_settings(db))) as app,
        client_from(app, "198.51.100.1") as first,
        client_from(app, "198.51.100.2") as second,
    ):
        await sign_in(first)
        await sign_in(second)
        assert (await second.get("/admin/")).status_code == 200
        token = csrf_of(await first.get("/admin/"))
        answer = await first.post("/admin/sessions/revoke", data={"csrftoken": token})
        assert answer.status_code == 303
        assert (await first.get("/admin/")).status_code == 303
        assert (await second.get("/admin/")).status_code == 303
        # Signing in again works, and the revocation is in the audit trail.
        await sign_in(first)
        audit = await first.get("/admin/audit")
    assert "admin.sessions.revoke" in audit.text


async def test_a_password_change_ends_the_sessions_of_the_old_one(db: Database) -> None:
    async with started(create_app(admin_settings(db))) as app, client_from(app, "::1") as client:
        await sign_in(client)
        copied = client.cookies[SESSION_COOKIE]
    changed = admin_settings(db, HUBSYNC_ADMIN_PASSWORD="another password entirely")
    async with started(create_app(changed)) as app, client_from(app, "::1") as client:
        client.cookies.set(SESSION_COOKIE, copied, path="/admin")
        assert (await client.get("/admin/")).status_code == 303


async def test_logins_are_limited_per_address_and_per_name_across_processes(
    db: Database,
) -> None:
    settings = admin_settings(db)
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(started(create_app(settings)))
        two = await stack.enter_async_context(started(create_app(settings)))
        # One client guessing, its tries spread over both processes: five, then 429.
        guesser = [
            await stack.enter_async_context(client_from(app, "203.0.113.9")) for app in (one, two)
        ]
        tries = [await log_in(guesser[i % 2], f"name{i}", "guess") for i in range(6)]
        assert tries == [401] * 5 + [429]
        # Someone else behind another address is not locked out by it...
        other = await stack.enter_async_context(client_from(two, "203.0.113.10"))
        assert await log_in(other, "carol", PASSWORD) == 303
        # ...but five wrong passwords for one name from five addresses lock that name.
        for index in range(5):
            client = await stack.enter_async_context(client_from(one, f"192.0.2.{index + 1}"))
            assert await log_in(client, "alice", "guess") == 401
        fresh = await stack.enter_async_context(client_from(two, "192.0.2.99"))
        assert await log_in(fresh, "alice", PASSWORD) == 429
        assert await log_in(fresh, "bob", PASSWORD) == 303
