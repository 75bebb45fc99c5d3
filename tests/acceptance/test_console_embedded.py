"""The embedded default's way in: `hubsync serve` with nothing configured prints a one-time
login link and an API token in its first lines (the banner); the link signs in once, the
console shows the five demo customers synced, and `/` leads there. Against a real HubSpot,
nothing is generated and the console stays off."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.admin.embedded import generate_embedded_access
from app.settings import Settings
from tests.acceptance.test_embedded_default import ROOT, free_port

LINK = re.compile(r"http://127\.0\.0\.1:\d+/admin/login/once\?token=[A-Za-z0-9_-]+")
TOKEN = re.compile(r"API token: +([A-Za-z0-9_-]{20,})")
FIRST_LINES = 8


def _wait_for(check: object, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()  # type: ignore[operator]
        except httpx.HTTPError:
            last = None
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s (last: {last!r})")


def test_the_printed_link_signs_in_once_and_shows_the_demo_customers(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HUBSYNC_", "HUBSPOT_", "WARP_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env["HUBSYNC_MODE"] = "demo"  # the embedded default, as `make run` starts it
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(  # noqa: S603 -- fixed argv
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200)
        first = log_path.read_text().splitlines()[:FIRST_LINES]
        links = [m.group(0) for line in first for m in [LINK.search(line)] if m]
        tokens = [m.group(1) for line in first for m in [TOKEN.search(line)] if m]
        assert len(links) == 1, first
        assert len(tokens) == 1, first
        assert links[0].startswith(base)

        root = httpx.get(base + "/", timeout=5)
        assert root.status_code == 307
        assert root.headers["location"] == "/admin/"
        with httpx.Client(base_url=base, timeout=10) as browser:
            signed_in = browser.get(links[0])
            assert signed_in.status_code == 303
            assert signed_in.headers["location"] == "/admin/"

            def all_five_synced() -> bool:
                page = browser.get("/admin/").text
                return (
                    'data-figure="customers-total" href="/admin/customers">5<' in page
                    and 'data-figure="customers-linked" href="/admin/customers">5<' in page
                    and 'data-figure="customers-not-linked" href="/admin/customers?unlinked=1">0<'
                    in page
                )

            _wait_for(all_five_synced)
        with httpx.Client(base_url=base, timeout=10) as stranger:
            again = stranger.get(links[0])
            assert again.status_code == 401  # one time only
            assert stranger.get("/admin/").status_code == 303
        dashboard = httpx.get(
            f"{base}/v1/sync/dashboard",
            headers={"Authorization": f"Bearer {tokens[0]}"},
            timeout=5,
        )
        assert dashboard.status_code == 200
        assert dashboard.json()["customers"]["linked"] == 5
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_nothing_is_generated_against_a_real_hubspot() -> None:
    real = Settings.from_mapping({"HUBSPOT_ACCESS_TOKEN": "pat-na1-real"})
    access = generate_embedded_access(real)
    assert access.settings == real
    assert access.one_time is None
    assert access.api_token is None
    assert not access.settings.admin_enabled
    assert access.settings.api_tokens == ()


def test_configured_credentials_are_kept_in_sandbox_mode() -> None:
    configured = Settings.from_mapping(
        {
            "HUBSYNC_ADMIN_PASSWORD": "mine",
            "HUBSYNC_SECRET_KEY": "my-key",
            "HUBSYNC_API_TOKENS": "my-token",
        }
    )
    access = generate_embedded_access(configured)
    assert access.settings == configured
    assert access.one_time is None
    assert access.api_token is None
