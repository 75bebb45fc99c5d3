"""`make run` invites a newcomer in: a plain-text banner (console link, password, API token)
before the JSON logs, credentials kept beside the demo database (0600) across restarts,
`hubsync admin link` for a new way in while it runs, "Open in HubSpot" as a page of the
sandbox, and `hubsync demo edit` for WARP's side. Real processes, observed from outside."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.admin.embedded import credentials_file, generate_embedded_access
from app.settings import Settings
from tests.acceptance.deployment import HUBSYNC, clean_env
from tests.acceptance.make_run import DemoRun

LINK = re.compile(r"http://127\.0\.0\.1:\d+/admin/login/once\?token=[A-Za-z0-9_-]+")
BAN = "ZT-487392012"  # Acme Telecom Ltd, a demo customer


def banner_of(log: str) -> dict[str, str]:
    """The banner's values, from the lines before the first JSON log line."""
    lines = log.splitlines()
    first_json = next(i for i, line in enumerate(lines) if line.startswith("{"))
    head = "\n".join(lines[:first_json])
    found = {
        "link": LINK.search(head),
        "password": re.search(r"Password: +(\S+)", head),
        "token": re.search(r"API token: +(\S+)", head),
    }
    assert all(found.values()), head
    return {
        key: match.group(1) if key != "link" else match.group(0) for key, match in found.items()
    }  # type: ignore[union-attr]


def wait_for(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s (last: {last!r})")


def sandbox_company(run: DemoRun, ban: str) -> dict[str, Any] | None:
    companies = httpx.get(f"{run.base}/_hubspot/_sandbox/companies", timeout=5).json()["results"]
    return next((c for c in companies if c["properties"].get("warp_ban") == ban), None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    run = DemoRun(tmp_path_factory.mktemp("make-run")).start()
    try:
        wait_for(lambda: sandbox_company(run, BAN))
        yield run
    finally:
        run.stop()


def test_the_banner_comes_first_in_plain_text_then_json_logs(demo: DemoRun) -> None:
    log = demo.log_path.read_text()
    lines = log.splitlines()
    assert lines[0].startswith("====="), lines[:3]
    banner = banner_of(log)
    assert banner["link"].startswith(demo.base + "/admin/login/once?token=")
    after = lines[next(i for i, line in enumerate(lines) if line.startswith("{")) :]
    records = [json.loads(line) for line in after if line.strip()]  # every one is JSON
    assert records
    logged = "\n".join(after)  # the secrets are the banner's alone
    assert banner["token"] not in logged
    assert banner["password"] not in logged
    answer = httpx.get(
        f"{demo.base}/v1/sync/dashboard",
        headers={"Authorization": f"Bearer {banner['token']}"},
        timeout=5,
    )
    assert answer.status_code == 200


def test_log_records_carry_fields_not_dict_reprs(demo: DemoRun) -> None:
    def batch_records() -> list[dict[str, Any]]:
        lines = demo.log_path.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return [r for r in records if r["message"].startswith("batch of")]

    batches = wait_for(batch_records)
    assert batches[0]["batch"]["done"] >= 1, batches[0]
    assert isinstance(batches[0]["lane"], str)
    records = [
        json.loads(line) for line in demo.log_path.read_text().splitlines() if line[:1] == "{"
    ]
    assert not [r["message"] for r in records if re.search(r"\{'\w+': ", r["message"])]


def test_credentials_are_kept_beside_the_database_readable_by_the_owner_only(
    demo: DemoRun,
) -> None:
    kept = demo.directory / "hubsync.db.env"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    banner = banner_of(demo.log_path.read_text())
    text = kept.read_text()
    assert f"HUBSYNC_API_TOKENS={banner['token']}" in text
    assert f"HUBSYNC_ADMIN_PASSWORD={banner['password']}" in text


def test_admin_link_mints_a_one_time_link_the_running_service_accepts(demo: DemoRun) -> None:
    printed = demo.shell("HUBSYNC_MODE=demo hubsync admin link --base-url http://127.0.0.1:8000")
    link = printed.strip()
    assert LINK.fullmatch(link), printed
    with httpx.Client(timeout=10) as browser:
        signed_in = browser.get(link)
        assert signed_in.status_code == 303
        assert browser.get(f"{demo.base}/admin/").status_code == 200
    with httpx.Client(timeout=10) as stranger:
        assert stranger.get(link).status_code == 401  # once only


def test_open_in_hubspot_shows_the_company_as_a_read_only_page(demo: DemoRun) -> None:
    link = demo.shell("HUBSYNC_MODE=demo hubsync admin link --base-url http://127.0.0.1:8000")
    with httpx.Client(base_url=demo.base, timeout=10) as browser:
        assert browser.get(link.strip()).status_code == 303
        found = browser.get("/admin/customers", params={"q": BAN}).text
        customer = re.search(r'href="(/admin/customers/[0-9a-f-]{36})"', found)
        assert customer, found
        page = browser.get(customer.group(1)).text
        opened = re.search(r'href="([^"]+)"[^>]*>Open in HubSpot<', page)
        assert opened, page
        view = browser.get(opened.group(1))
    assert view.status_code == 200
    assert view.headers["content-type"].startswith("text/html")
    assert "Acme Telecom Ltd" in view.text
    assert BAN in view.text
    assert "script" not in view.text.lower()


def test_demo_edit_writes_warp_and_the_change_reaches_the_sandbox(demo: DemoRun) -> None:
    database = demo.directory / "hubsync.db"
    with sqlite3.connect(database) as connection:
        (before,) = connection.execute(
            "SELECT updated_at FROM customers WHERE ban = ?", (BAN,)
        ).fetchone()
    printed = demo.shell(f"HUBSYNC_MODE=demo hubsync demo edit {BAN} credit_limit=75000")
    assert "credit_limit=75000" in printed
    with sqlite3.connect(database) as connection:
        limit, after = connection.execute(
            "SELECT credit_limit, updated_at FROM customers WHERE ban = ?", (BAN,)
        ).fetchone()
    assert float(limit) == 75000
    assert after != before

    def synced() -> bool:
        company = sandbox_company(demo, BAN)
        return company is not None and company["properties"].get("warp_credit_limit") == "75000"

    wait_for(synced)


def test_restarting_keeps_the_token_and_password(tmp_path: Path) -> None:
    first = DemoRun(tmp_path).start()
    first.stop()
    seen = banner_of(first.log_path.read_text())
    first.log_path.rename(tmp_path / "first.log")
    second = DemoRun(tmp_path).start()
    try:
        again = banner_of(second.log_path.read_text())
        assert again["token"] == seen["token"]
        assert again["password"] == seen["password"]
        assert again["link"] != seen["link"]  # a new one-time link each start
        with httpx.Client(timeout=10) as browser:
            assert browser.get(again["link"]).status_code == 303
    finally:
        second.stop()


def test_production_mode_keeps_no_credentials_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/hubsync.db"
    production = Settings.from_mapping(
        {"HUBSYNC_DATABASE_URL": url, "HUBSPOT_ACCESS_TOKEN": "pat-na1-real"}
    )
    assert credentials_file(production) is None
    assert generate_embedded_access(production).settings == production
    assert list(tmp_path.iterdir()) == []
    demo = Settings.from_mapping({"HUBSYNC_DATABASE_URL": url, "HUBSYNC_MODE": "demo"})
    assert credentials_file(demo) == tmp_path / "hubsync.db.env"


def test_demo_edit_refuses_outside_demo_mode(tmp_path: Path) -> None:
    env = clean_env({"HUBSPOT_ACCESS_TOKEN": "pat-na1-real"})
    done = subprocess.run(  # noqa: S603 -- fixed argv
        [*HUBSYNC, "demo", "edit", BAN, "credit_limit=1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "demo mode only" in done.stderr
