"""`hubsync migrate` says what it does: each revision with its duration and a summary; `--sql`
prints the SQL and runs nothing; a downgrade lists the tables and columns it would drop and
changes nothing without `--yes`. Run as the operator runs it, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

from app.store import migrate
from tests.conftest import Database
from tests.integration.test_cli import run


async def test_migrate_up_and_down_says_each_step(db: Database, tmp_path: Path) -> None:
    env = {"HUBSYNC_DATABASE_URL": db.url, "WARP_CUSTOMERS_TABLE": db.customers_table}
    head = migrate.head_revision()
    await migrate.downgrade(db.engine, "0006")

    sql = run(["migrate", "--sql"], env, tmp_path)
    assert sql.returncode == 0, sql.stderr  # the upgrades only add (SQLite can, in place)
    assert "ALTER TABLE hubspot_reconciliation_runs ADD COLUMN" in sql.stdout
    assert await migrate.current_revision(db.engine) == "0006"  # --sql ran nothing

    up = run(["migrate"], env, tmp_path)
    assert up.returncode == 0, up.stderr
    lines = up.stdout.splitlines()
    assert lines[0].startswith("applying ")
    assert lines[0].endswith(f"from 0006 to {head}:")
    assert re.fullmatch(r"  0005 +\d+\.\d\d s  Reconciliation", lines[1])
    assert any(re.fullmatch(rf"migrated to {head} in \d+\.\d\d s", line) for line in lines)

    sql = run(["migrate", "--downgrade", "--revision", "0006", "--sql"], env, tmp_path)
    if db.kind == "postgresql":
        assert sql.returncode == 0, sql.stderr
        assert "ALTER TABLE hubspot_entity_links DROP COLUMN warp_ban_text" in sql.stdout
    else:  # SQLite drops a column by copying the table, which needs the live table
        assert sql.returncode == 2
        assert "cannot show the SQL offline here" in sql.stdout
    assert await migrate.current_revision(db.engine) == head  # --sql ran nothing

    refused = run(["migrate", "--downgrade", "--revision", "0006"], env, tmp_path)
    assert refused.returncode == 3
    assert "  0005: table hubspot_reconciliation_items" in refused.stdout
    assert "run again with --yes" in refused.stdout
    assert await migrate.current_revision(db.engine) == head  # nothing dropped

    down = run(["migrate", "--downgrade", "--revision", "0006", "--yes"], env, tmp_path)
    assert down.returncode == 0, down.stderr
    assert re.search(r"downgraded to 0006 in \d+\.\d\d s", down.stdout)
    assert await migrate.current_revision(db.engine) == "0006"

    again = run(["migrate", "--revision", "0006"], env, tmp_path)
    assert again.stdout.strip() == "already at 0006; nothing to do"
