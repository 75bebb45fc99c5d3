"""The console's reconciliation page through HTTP as a browser uses it: a run's categories
and items, the CSV behind the session, "run now" with its CSRF token (409 while one runs),
and the dashboard's last and next run."""

from __future__ import annotations

import csv
import io

import httpx

from app.main import create_app
from app.store import reconciliation as runs
from app.store.admin_audit import recent_actions
from app.store.reconciliation import Checkpoint, RunRecord
from app.sync.reconcile.categories import Category, Finding, FixAction
from tests.conftest import Database
from tests.integration.admin_support import admin_settings, csrf_of, sign_in
from tests.support import eventually, running

SYNC = FixAction.SYNC
DRIFT = {"field": "name", "warp": "Acme", "hubspot": "ACME Ltd", "decision": "WARP wins"}


async def _a_finished_run(db: Database) -> RunRecord:
    run = await runs.start_run(
        db.engine, mode="dry_run", trigger="api", owner="elsewhere", lease_seconds=30
    )
    assert run is not None
    async with db.engine.begin() as connection:
        await runs.add_items(
            connection,
            run.id,
            [
                Finding(Category.DRIFT, "c-1", ban="B1", fields=[DRIFT], action=SYNC).item(),
                Finding(Category.DRIFT, "c-2", ban="B2", fields=[DRIFT], action=SYNC).item(),
                Finding(Category.ORPHAN, company_id="9001", detail="no such BAN").item(),
            ],
        )
        counts = {"drift": 2, "orphan": 1, "in_sync": 5}
        await runs.save_checkpoint(
            connection, run.id, "elsewhere", Checkpoint("done", None, None, counts, 2, 0), 30
        )
    done = await runs.finish_run(db.engine, run.id, "elsewhere", status="done", report={})
    assert done is not None
    return done


async def test_a_runs_categories_items_and_csv(db: Database) -> None:
    run = await _a_finished_run(db)
    settings = admin_settings(db, HUBSYNC_DEMO_DATA="false", HUBSYNC_RECONCILE_CRON="30 3 * * *")
    async with running(create_app(settings)) as client:
        csv_url = f"/admin/reconciliation/{run.id}/report.csv"
        refused = await client.get(csv_url)
        assert refused.status_code == 303
        assert refused.headers["location"].startswith("/admin/login")

        await sign_in(client)
        page = (await client.get("/admin/reconciliation")).text
        assert f'href="/admin/reconciliation?run={run.id}"' in page
        drift_link = f'href="/admin/reconciliation?run={run.id}&amp;category=drift">2<'
        assert f'data-figure="category-drift" {drift_link}' in page
        assert f'href="{csv_url}"' in page
        drift = (await client.get(f"/admin/reconciliation?run={run.id}&category=drift")).text
        assert "c-1" in drift
        assert "c-2" in drift
        assert "ACME Ltd" in drift
        assert "9001" not in drift
        orphans = (await client.get(f"/admin/reconciliation?run={run.id}&category=orphan")).text
        assert "9001" in orphans
        assert "no such BAN" in orphans
        assert "c-1" not in orphans
        missing = await client.get("/admin/reconciliation?run=999999")
        assert missing.status_code == 404

        report = await client.get(csv_url)
        assert report.status_code == 200
        assert report.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(report.text)))
        assert sorted(r["category"] for r in rows) == ["drift", "drift", "orphan"]
        assert {r["hubspot_value"] for r in rows if r["category"] == "drift"} == {"ACME Ltd"}

        dashboard = (await client.get("/admin/")).text
        assert f'href="/admin/reconciliation?run={run.id}">Run {run.id}: dry_run done' in dashboard
        assert "03:30 UTC</span>" in dashboard


async def _posted(client: httpx.AsyncClient, mode: str, *, csrf: bool = True) -> httpx.Response:
    page = await client.get("/admin/reconciliation")
    data = {"mode": mode, **({"csrftoken": csrf_of(page)} if csrf else {})}
    return await client.post("/admin/reconciliation/run", data=data)


async def test_run_now_needs_the_csrf_token_and_waits_for_a_running_run(db: Database) -> None:
    async with running(create_app(admin_settings(db, HUBSYNC_DEMO_DATA="false"))) as client:
        await sign_in(client)
        assert (await _posted(client, "dry_run", csrf=False)).status_code == 403
        async with db.engine.connect() as connection:
            assert await runs.list_runs(connection) == []

        started = await _posted(client, "dry_run")
        assert started.status_code == 303, started.text
        assert "notice" not in started.headers["location"]  # no notice to go stale
        async with db.engine.connect() as connection:
            [run] = await runs.list_runs(connection)
            [audited] = await recent_actions(connection, action_prefix="reconciliation.")
        assert (run.mode, run.trigger, run.requested_by) == ("dry_run", "operator", "admin:tester")
        assert (audited.actor, audited.target) == ("admin:tester", f"run:{run.id}")
        shown = (await client.get(started.headers["location"])).text
        assert f'id="run-{run.id}"' in shown
        assert "refresh to follow it" not in shown

        async def finished() -> RunRecord | None:
            async with db.engine.connect() as connection:
                record = await runs.get_run(connection, run.id)
            return record if record is not None and record.status != "running" else None

        assert (await eventually(finished, timeout=30)).status == "done"
        other = await runs.start_run(
            db.engine, mode="fix", trigger="api", owner="elsewhere", lease_seconds=30
        )
        assert other is not None
        busy = await _posted(client, "fix")
        assert busy.status_code == 409
        assert "A reconciliation run is in progress" in busy.text
        assert (await _posted(client, "everything")).status_code == 422
