"""The `hubsync` command as an operator runs it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

HUBSYNC = [sys.executable, "-m", "app.cli"]


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HUBSYNC_", "HUBSPOT_", "WARP_"))
    }
    full_env.update(env)
    full_env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return subprocess.run(  # noqa: S603 -- fixed argv
        HUBSYNC + args,
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run(["--help"], {}, tmp_path)
    assert result.returncode == 0
    for command in ("serve", "migrate"):
        assert command in result.stdout
    serve_help = run(["serve", "--help"], {}, tmp_path)
    assert "--host" in serve_help.stdout
    assert "--port" in serve_help.stdout
    assert "--workers" in serve_help.stdout
    for command in (["status"], ["jobs", "retry"]):
        helped = run([*command, "--help"], {}, tmp_path)
        assert helped.returncode == 0
        assert "--json" in helped.stdout


def test_malformed_database_url_exits_non_zero_with_one_clear_line(tmp_path: Path) -> None:
    result = run(["serve"], {"HUBSYNC_DATABASE_URL": "postgres//nope:secretpw@"}, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "HUBSYNC_DATABASE_URL" in lines[0]
    assert "secretpw" not in result.stderr


def test_migrate_creates_schema_and_demo_customers(tmp_path: Path) -> None:
    database = tmp_path / "hubsync.db"
    env = {"HUBSYNC_DATABASE_URL": f"sqlite:///{database}"}
    first = run(["migrate"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    second = run(["migrate"], env, tmp_path)  # safe to run again
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(database) as connection:
        customers = connection.execute("SELECT ban, company_name FROM customers").fetchall()
        rules = connection.execute("SELECT count(*) FROM hubspot_sync_config").fetchone()
    assert len(customers) == 5
    assert ("ZT-487392012", "Acme Telecom Ltd") in customers
    assert rules == (10,)


def test_status_without_a_reachable_database_is_one_line_without_the_password(
    tmp_path: Path,
) -> None:
    unreachable = {"HUBSYNC_DATABASE_URL": "postgresql://hubsync:secretpw@127.0.0.1:1/hubsync"}
    for args in (["status"], ["status", "--json"], ["jobs", "retry", "--failed"]):
        result = run(args, unreachable, tmp_path)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "cannot read the database" in lines[0]
        assert "secretpw" not in result.stderr + result.stdout
