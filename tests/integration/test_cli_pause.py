"""`hubsync pause|resume [outbound|inbound]` as an operator runs it, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

from app.store.admin_audit import recent_actions
from app.store.pauses import paused_directions
from tests.conftest import Database
from tests.integration.test_cli import run


async def _paused(db: Database) -> list[str]:
    async with db.engine.connect() as connection:
        return sorted(await paused_directions(connection))


def test_help_explains_pause_and_resume(tmp_path: Path) -> None:
    for command in ("pause", "resume"):
        result = run([command, "--help"], {}, tmp_path)
        assert result.returncode == 0
        assert "outbound" in result.stdout
        assert "inbound" in result.stdout
        assert "--json" in result.stdout


async def test_pause_and_resume_one_direction_and_both(db: Database, tmp_path: Path) -> None:
    env = db.env
    paused = run(["pause", "outbound", "--reason", "HubSpot maintenance", "--json"], env, tmp_path)
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout) == {
        "action": "pause",
        "changed": ["outbound"],
        "paused": ["outbound"],
    }
    assert await _paused(db) == ["outbound"]

    both = run(["pause"], env, tmp_path)
    assert both.returncode == 0, both.stderr
    assert "outbound (WARP → HubSpot): paused (already paused)" in both.stdout
    assert "inbound (HubSpot → WARP): paused" in both.stdout
    assert await _paused(db) == ["inbound", "outbound"]

    resumed = run(["resume", "--json"], env, tmp_path)
    assert json.loads(resumed.stdout)["paused"] == []
    assert await _paused(db) == []
    async with db.engine.connect() as connection:
        audit = await recent_actions(connection)
    actions = [(entry.action, entry.target) for entry in audit]
    assert ("direction.pause", "outbound") in actions
    assert ("direction.resume", "inbound") in actions
    assert all(entry.actor.startswith("cli:") for entry in audit)


def test_an_unknown_direction_is_refused(tmp_path: Path) -> None:
    result = run(["pause", "sideways"], {}, tmp_path)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
