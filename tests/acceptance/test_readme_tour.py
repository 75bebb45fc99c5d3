"""The README's quick tour, run as written: its blocks marked `<!-- tour -->`, in order, in a
shell beside `make run` (the Makefile's own commands on a temporary directory: a real `serve`
in demo mode on a fresh SQLite file). After each step, what the README says happens is
checked from outside — the sandbox's API, the WARP table, hubsync's API — so the tour cannot
rot: a changed command, route or body fails here."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.make_run import ROOT, DemoRun

BAN = "ZT-487392012"
TOUR_BLOCK = re.compile(r"^<!-- tour -->\n```sh\n(.*?)\n```$", re.M | re.S)


def tour_blocks() -> list[str]:
    return TOUR_BLOCK.findall((ROOT / "README.md").read_text())


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def test_the_readme_has_a_setup_and_five_steps_marked_for_the_tour() -> None:
    blocks = tour_blocks()
    assert len(blocks) == 7, blocks  # set-up, steps 1-4, step 5's conflict and its resolution
    readme = (ROOT / "README.md").read_text()
    assert readme.index("## Quick tour") < readme.index("## Configuration")


def test_the_readme_tour_runs_against_make_run(tmp_path: Path) -> None:
    setup, console, crm_edit, warp_edit, reconcile, conflict, resolve = tour_blocks()
    run = DemoRun(tmp_path).start()
    token = re.search(
        r"^HUBSYNC_API_TOKENS=(\S+)$", (tmp_path / "hubsync.db.env").read_text(), re.M
    )
    assert token
    api = httpx.Client(
        base_url=run.base, headers={"Authorization": f"Bearer {token.group(1)}"}, timeout=10
    )

    def step(block: str) -> str:
        return run.shell(f"{setup}\n{block}")

    def company() -> dict[str, Any]:
        found = httpx.get(
            f"{run.base}/_hubspot/crm/v3/objects/companies/{BAN}",
            params={"idProperty": "warp_ban", "properties": "name,warp_credit_limit"},
            headers={"Authorization": "Bearer any"},
            timeout=5,
        )
        return found.json() if found.status_code == 200 else {}

    def warp(column: str) -> Any:
        with sqlite3.connect(tmp_path / "hubsync.db") as connection:
            row = connection.execute(
                f"SELECT {column} FROM customers WHERE ban = ?",
                (BAN,),
            ).fetchone()
        return row[0]

    try:
        wait_for(company, "the demo customer's company in the sandbox")

        # 1. The console: a one-time link the running server takes once.
        link = step(console).strip().replace(":8000", f":{run.port}")
        with httpx.Client(timeout=10) as browser:
            assert browser.get(link).status_code == 303
            assert browser.get(f"{run.base}/admin/").status_code == 200

        # 2. A CRM edit: its body is HubSpot's, and WARP takes the credit limit.
        printed = step(crm_edit)
        assert '"warp_credit_limit":"90000"' in printed.replace(" ", "")
        wait_for(lambda: float(warp("credit_limit") or 0) == 90000, "WARP's credit limit")

        # 3. A WARP edit: HubSpot's name follows.
        step(warp_edit)
        wait_for(
            lambda: company().get("properties", {}).get("name") == "Acme Telecom Group",
            "the company's new name in HubSpot",
        )

        # 4. A reconciliation: a run that finishes with a report.
        step(reconcile)

        def finished() -> dict[str, Any] | None:
            runs = api.get("/v1/reconciliation/runs", params={"limit": 1}).json()["runs"]
            return runs[0] if runs and runs[0]["state"] == "done" else None

        report = wait_for(finished, "the reconciliation run")
        assert report["counts"].get("in_sync", 0) + report["counts"].get("drift", 0) == 5

        # 5. A conflict: both sides changed while paused, for a person to decide...
        step(conflict)

        def open_conflict() -> list[dict[str, Any]]:
            conflicts: list[dict[str, Any]] = api.get("/v1/sync/conflicts").json()["conflicts"]
            return conflicts

        opened = wait_for(open_conflict, "an open conflict")
        assert json.dumps(opened).count("Acme (as sales says)") >= 1
        assert warp("company_name") == "Acme (as billing says)"

        # ... and resolved: WARP's value on both sides, nothing left open.
        status = step(resolve)
        assert re.search(r"^HubSpot: +the built-in HubSpot sandbox", status, re.M), status
        wait_for(
            lambda: company().get("properties", {}).get("name") == "Acme (as billing says)",
            "WARP's value in HubSpot",
        )
        assert open_conflict() == []
    finally:
        api.close()
        run.stop()
