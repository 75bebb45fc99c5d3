"""What the `hubsync` command tells an operator: every bad setting at once, and a status that
names the portal the database is bound to, the paused directions and the next reconciliation."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from tests.integration.test_cli import run


def test_check_config_lists_every_bad_value(tmp_path: Path) -> None:
    bad = {
        "HUBSYNC_MODE": "demo",
        "HUBSYNC_LOG_LEVEL": "LOUD",
        "HUBSYNC_WORKER_BATCH_SIZE": "many",
        "HUBSPOT_RATE_LIMIT": "fast",
        "HUBSYNC_RECONCILE_CRON": "every day",
    }
    result = run(["check-config"], bad, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    named = sorted(
        match[1]
        for line in lines
        if (match := re.match(r"hubsync: configuration error: (\w+):", line))
    )
    assert named == sorted(set(bad) - {"HUBSYNC_MODE"}), result.stderr
    assert len(lines) == 4, result.stderr


def test_status_names_the_sandbox_portal_pauses_and_the_next_reconciliation(
    tmp_path: Path,
) -> None:
    database = tmp_path / "hubsync.db"
    env = {"HUBSYNC_DATABASE_URL": f"sqlite:///{database}", "HUBSYNC_MODE": "demo"}
    assert run(["migrate"], env, tmp_path).returncode == 0
    with sqlite3.connect(database) as connection:  # what a demo serve records at its first sync
        connection.execute(
            "INSERT INTO hubsync_portal (id, kind, portal_id, base_url) "
            "VALUES (1, 'sandbox', '1', NULL)"
        )
    paused = run(["pause", "inbound", "--reason", "tour"], env, tmp_path)
    assert paused.returncode == 0, paused.stderr
    # The operator's shell need not say demo: the database says which portal it is bound to.
    plain = {"HUBSYNC_DATABASE_URL": env["HUBSYNC_DATABASE_URL"], "HUBSPOT_ACCESS_TOKEN": "x"}
    status = run(["status"], plain, tmp_path)
    assert status.returncode == 0, status.stderr
    text = status.stdout
    assert re.search(r"^HubSpot: +the built-in HubSpot sandbox \(portal 1\)", text, re.M), text
    assert "api.hubapi.com" not in text
    assert re.search(r"^paused: +HubSpot → WARP .*tour", text, re.M), text
    assert re.search(r"^next reconciliation: +\d{4}-\d\d-\d\dT03:00:00", text, re.M), text
    as_json = run(["status", "--json"], plain, tmp_path)
    assert '"kind": "sandbox"' in as_json.stdout
    assert '"next_reconciliation"' in as_json.stdout


def test_status_before_any_sync_says_no_portal_is_bound(tmp_path: Path) -> None:
    database = tmp_path / "hubsync.db"
    env = {"HUBSYNC_DATABASE_URL": f"sqlite:///{database}", "HUBSYNC_RECONCILE_CRON": ""}
    assert run(["migrate"], env, tmp_path).returncode == 0
    status = run(["status"], {**env, "HUBSPOT_ACCESS_TOKEN": "x"}, tmp_path)
    assert status.returncode == 0, status.stderr
    assert re.search(r"^HubSpot: +not bound yet", status.stdout, re.M), status.stdout
    assert re.search(r"^paused: +none", status.stdout, re.M), status.stdout
    assert re.search(r"^next reconciliation: +none scheduled", status.stdout, re.M)
