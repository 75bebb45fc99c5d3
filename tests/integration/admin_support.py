"""Helpers for the console's tests: settings with a known password, the CSRF token of a
page, and signing in the way a browser does."""

from __future__ import annotations

import re

import httpx

from app.settings import Settings
from tests.conftest import Database

PASSWORD = "correct horse battery staple"
SECRET_KEY = "k" * 48
API_TOKEN = "operator-api-token-0123456789"
_CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')


def admin_settings(db: Database, **extra: str) -> Settings:
    return Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_SCHEDULER": "false",
            "HUBSYNC_ADMIN_PASSWORD": PASSWORD,
            "HUBSYNC_SECRET_KEY": SECRET_KEY,
            "HUBSYNC_API_TOKENS": API_TOKEN,
            **extra,
        }
    )


def csrf_of(page: httpx.Response | str) -> str:
    match = _CSRF.search(page if isinstance(page, str) else page.text)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/admin/login")
    return await client.post(
        "/admin/login",
        data={
            "csrftoken": csrf_of(page),
            "password": password,
            "name": "tester",
            "next": "/admin/",
        },
    )
