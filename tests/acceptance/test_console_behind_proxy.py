"""The console behind a proxy, against a real `hubsync serve --workers 2` on PostgreSQL: the
login limit follows the client address the trusted proxy forwards and the login name, across
both processes, and a session ended in one process is ended in the other. Every request here
comes on a new connection, so the two processes share the work."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.acceptance.deployment import Deployment, deployment
from tests.conftest import _libpq

pytestmark = pytest.mark.slow
PASSWORD = "a console password for the proxy test"
CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')
COOKIE = "hubsync_admin"


def fresh(service: Deployment, forwarded_for: str | None = None) -> httpx.Client:
    """A client opening a new connection for every request (either process may take it)."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return httpx.Client(
        base_url=service.base,
        headers=headers,
        timeout=10,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def log_in(client: httpx.Client, name: str, password: str) -> int:
    page = client.get("/admin/login")
    token = CSRF.search(page.text)
    assert token, page.text[:300]
    answer = client.post(
        "/admin/login",
        data={"csrftoken": token.group(1), "password": password, "name": name, "next": "/admin/"},
    )
    return answer.status_code


def test_login_limit_and_sessions_behind_a_trusted_proxy(postgres_url: str, tmp_path: Path) -> None:
    settings = {
        "HUBSYNC_ADMIN_PASSWORD": PASSWORD,
        "HUBSYNC_SECRET_KEY": "s" * 48,
        "HUBSYNC_TRUSTED_PROXIES": "127.0.0.1",  # the test plays the Ingress from here
    }
    with deployment(postgres_url, tmp_path, workers=2, extra_env=settings) as service:
        # One operator guessing: five tries over both processes, then 429...
        with fresh(service, "203.0.113.7") as guesser:
            tries = [log_in(guesser, f"guess{i}", "wrong") for i in range(6)]
            assert tries == [401] * 5 + [429]
        # ...while another operator behind the same proxy signs in.
        with fresh(service, "203.0.113.8") as operator:
            assert log_in(operator, "dana", PASSWORD) == 303
            copied = operator.cookies[COOKIE]
            assert operator.get("/admin/").status_code == 200
            page = operator.get("/admin/")
            token = CSRF.search(page.text)
            assert token
            assert operator.post("/admin/logout", data={"csrftoken": token.group(1)}).is_redirect
        # The cookie copied before the logout opens nothing, whichever process answers.
        for _ in range(6):
            with fresh(service) as thief:
                thief.cookies.set(COOKIE, copied, path="/admin")
                answer = thief.get("/admin/")
                assert answer.status_code == 303, answer.text[:200]
                assert answer.headers["location"].startswith("/admin/login")
    # The forwarded address is the client's, as recorded in the audit trail.
    with psycopg.connect(_libpq(postgres_url)) as connection:
        logins = connection.execute(
            "SELECT actor, detail->>'client' FROM hubsync_admin_audit WHERE action = 'admin.login'"
        ).fetchall()
    assert logins == [("admin:dana", "203.0.113.8")]
