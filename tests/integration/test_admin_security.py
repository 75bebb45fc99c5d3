"""The console's doors: no page or action without a session, signed cookies that cannot be
forged or altered, CSRF on every form, the login limit, security headers, no secret shown."""

from __future__ import annotations

import re

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from app.admin.access import SESSION_COOKIE
from app.main import create_app
from app.settings import Settings
from tests.conftest import Database
from tests.integration.admin_support import (
    API_TOKEN,
    PASSWORD,
    SECRET_KEY,
    admin_settings,
    csrf_of,
    sign_in,
)
from tests.support import running

PAGES = [
    "/admin/",
    "/admin/?range=7d",
    "/admin/fragments/figures",
    "/admin/fragments/charts?range=24h",
    "/admin/customers",
    "/admin/customers?unlinked=1",
    "/admin/conflicts",
    "/admin/conflicts?state=resolved",
    "/admin/failed",
    "/admin/events?status=failed",
    "/admin/jobs?state=pending",
    "/admin/rules",
    "/admin/reconciliation",
    "/admin/audit",
]
ACTIONS = [
    "/admin/directions/outbound/pause",
    "/admin/conflicts/1/resolve",
    "/admin/failed/retry",
    "/admin/events/reprocess",
    "/admin/rules",
    "/admin/customers/00000000-0000-0000-0000-000000000001/sync",
]


async def test_the_console_is_404_when_not_configured(db: Database) -> None:
    settings = Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_MODE": "production",
            "HUBSPOT_ACCESS_TOKEN": "pat-real",
            "HUBSPOT_BASE_URL": "http://127.0.0.1:9",
        }
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/admin/", "/admin/login", "/admin/login/once?token=x"):
            assert (await client.get(path)).status_code == 404


async def test_no_page_and_no_action_without_a_session(db: Database) -> None:
    async with running(create_app(admin_settings(db))) as client:
        for path in PAGES:
            response = await client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/admin/login?next=")
        token = csrf_of(await client.get("/admin/login"))
        for path in ACTIONS:
            response = await client.post(path, data={"csrftoken": token, "choice": "WARP"})
            assert response.status_code == 401, path
        assert (await client.get("/admin/")).status_code == 303


async def test_a_wrong_password_is_refused_and_the_right_one_signs_in(db: Database) -> None:
    async with running(create_app(admin_settings(db))) as client:
        wrong = await sign_in(client, "not it")
        assert wrong.status_code == 401
        assert "not right" in wrong.text
        assert SESSION_COOKIE not in client.cookies
        right = await sign_in(client)
        assert right.status_code == 303
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
        assert "Path=/admin" in cookie
        assert "Max-Age=28800" in cookie
        assert "Secure" not in cookie  # plain HTTP here
        page = await client.get("/admin/")
        assert page.status_code == 200
        assert "Sync health" in page.text


async def test_the_cookie_is_secure_behind_https(db: Database) -> None:
    async with running(create_app(admin_settings(db)), base_url="https://hubsync.test") as client:
        response = await sign_in(client)
    assert "Secure" in response.headers["set-cookie"]


async def test_forged_tampered_and_expired_cookies_are_refused(db: Database) -> None:
    async with running(create_app(admin_settings(db))) as client:
        await sign_in(client)
        genuine = client.cookies[SESSION_COOKIE]
        forged = URLSafeTimedSerializer("another key", salt="hubsync.admin.session").dumps(
            {"who": "admin:mallory", "k": "0" * 16}
        )
        payload, _, signature = genuine.rpartition(".")
        tampered = f"{payload[:-2]}xx.{signature}"
        for bad in (forged, tampered, "garbage", genuine + "x"):
            client.cookies.set(SESSION_COOKIE, bad, path="/admin")
            response = await client.get("/admin/")
            assert response.status_code == 303, bad
        client.cookies.set(SESSION_COOKIE, genuine, path="/admin")
        assert (await client.get("/admin/")).status_code == 200
    # Another password: every session signed for the old one ends.
    changed = admin_settings(db, HUBSYNC_ADMIN_PASSWORD="a new password")
    async with running(create_app(changed)) as client:
        client.cookies.set(SESSION_COOKIE, genuine, path="/admin")
        assert (await client.get("/admin/")).status_code == 303


async def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(db: Database) -> None:
    async with running(create_app(admin_settings(db))) as client:
        await sign_in(client)
        page = await client.get("/admin/")
        token = csrf_of(page)
        for data in ({}, {"csrftoken": "wrong"}, {"csrftoken": token[:-1] + "x"}):
            response = await client.post("/admin/directions/outbound/pause", data=data)
            assert response.status_code == 403, data
        banner = 'id="paused-outbound"'  # base.html's banner while outbound is paused
        assert banner not in (await client.get("/admin/")).text
        ok = await client.post("/admin/directions/outbound/pause", data={"csrftoken": token})
        assert ok.status_code == 303
        assert banner in (await client.get("/admin/")).text
        # Without the CSRF cookie the form's token alone is not enough either.
        del client.cookies["csrftoken"]
        again = await client.post("/admin/directions/outbound/resume", data={"csrftoken": token})
        assert again.status_code == 403


async def test_the_login_form_itself_needs_the_csrf_token(db: Database) -> None:
    async with running(create_app(admin_settings(db))) as client:
        response = await client.post("/admin/login", data={"password": PASSWORD})
    assert response.status_code == 403


async def test_logins_are_limited_per_client(db: Database) -> None:
    async with running(create_app(admin_settings(db))) as client:
        statuses = [(await sign_in(client, "guess")).status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        # The limit holds even for the right password until the minute has passed.
        assert (await sign_in(client)).status_code == 429


async def test_security_headers_and_no_secret_on_any_page(db: Database) -> None:
    async with running(create_app(admin_settings(db))) as client:
        await sign_in(client)
        for path in [*PAGES, "/admin/login"]:
            response = await client.get(path, follow_redirects=True)
            assert response.status_code == 200, path
            policy = response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in policy
            assert "script-src 'self'" in policy
            assert "unsafe-inline" not in policy
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert re.search(r"<script(?![^>]*\bsrc=)", response.text) is None, path
            for secret in (PASSWORD, SECRET_KEY, API_TOKEN):
                assert secret not in response.text, (path, secret)
            assert response.headers["cache-control"] == "no-store"
        stylesheet = await client.get("/admin/static/admin.css")
        assert stylesheet.status_code == 200
        assert stylesheet.headers["cache-control"] == "public, max-age=3600"


async def test_logout_ends_the_session(db: Database) -> None:
    async with running(create_app(admin_settings(db))) as client:
        await sign_in(client)
        token = csrf_of(await client.get("/admin/"))
        response = await client.post("/admin/logout", data={"csrftoken": token})
        assert response.status_code == 303
        assert (await client.get("/admin/")).status_code == 303


@pytest.mark.parametrize(
    "path", ["/admin/login?next=//evil.example", "/admin/login?next=https://x"]
)
async def test_the_next_parameter_never_leaves_the_console(db: Database, path: str) -> None:
    async with running(create_app(admin_settings(db))) as client:
        page = await client.get(path)
        assert 'name="next" value="/admin/"' in page.text
