"""`hubsync scope show|set` as an operator runs it, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

from app.store.admin_audit import recent_actions
from app.store.sync_scope import load_scope
from tests.conftest import Database
from tests.integration.test_cli import run


async def test_set_show_dry_run_and_clear_the_scope(db: Database, tmp_path: Path) -> None:
    env = db.env
    args = ["--not-in", "status=CLOSED", "--in", "customer_type=POSTPAID,RESELLER"]
    preview = run(["scope", "set", *args, "--dry-run", "--json"], env, tmp_path)
    assert preview.returncode == 0, preview.stderr
    assert json.loads(preview.stdout)["dry_run"] is True
    async with db.engine.connect() as connection:
        assert (await load_scope(connection)).everyone  # a dry run saves nothing

    saved = run(["scope", "set", *args], env, tmp_path)
    assert saved.returncode == 0, saved.stderr
    shown = run(["scope", "show"], env, tmp_path)
    assert shown.stdout.splitlines() == [
        "customer_type in (POSTPAID, RESELLER)",
        "status not in (CLOSED)",
    ]
    async with db.engine.connect() as connection:
        [entry, *_] = await recent_actions(connection)
    assert entry.action == "scope.replace"
    assert entry.actor.startswith("cli:")

    cleared = run(["scope", "set", "--everyone"], env, tmp_path)
    assert cleared.returncode == 0, cleared.stderr
    assert run(["scope", "show"], env, tmp_path).stdout.strip() == "everyone (no conditions)"


def test_a_bad_condition_is_one_line_and_exit_2(db: Database, tmp_path: Path) -> None:
    unknown = run(["scope", "set", "--in", "colour=RED"], db.env, tmp_path)
    assert unknown.returncode == 2
    assert "no column 'colour'" in unknown.stderr
    malformed = run(["scope", "set", "--in", "status"], db.env, tmp_path)
    assert malformed.returncode == 2
    assert "COLUMN=VALUE" in malformed.stderr
    neither = run(["scope", "set"], db.env, tmp_path)
    assert neither.returncode == 2
