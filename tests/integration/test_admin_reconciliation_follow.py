"""Reconciliation you can follow: while a run goes on the page shows the pages read on each
side and the items so far (and reloads itself), state and duration each once, no stale
notice; a fix run only after a confirmation step; drift per category over the last runs as
a chart with axes and a table."""

from __future__ import annotations

import itertools
import re

from app.main import create_app
from app.store import reconciliation as runs
from app.store.reconciliation import Checkpoint, RunRecord
from tests.conftest import Database
from tests.integration.admin_support import admin_settings, csrf_of, sign_in
from tests.integration.test_job_api import add_customers
from tests.support import eventually, running


async def test_progress_while_running_then_state_and_duration_once(db: Database) -> None:
    run = await runs.start_run(
        db.engine, mode="dry_run", trigger="api", owner="elsewhere", lease_seconds=60
    )
    assert run is not None
    progress = Checkpoint(
        "hubspot", "300", None, {"drift": 2, "in_sync": 40}, 3, 0, hubspot_pages=3
    )
    async with db.engine.begin() as connection:
        await runs.save_checkpoint(connection, run.id, "elsewhere", progress, 60)
    async with running(create_app(admin_settings(db, HUBSYNC_DEMO_DATA="false"))) as client:
        await sign_in(client)
        page = (await client.get("/admin/reconciliation")).text
        assert '<meta http-equiv="refresh" content="3">' in page
        assert re.search(r'data-figure="run-state">running<', page)
        assert "reading HubSpot" in page
        assert 'data-figure="pages-hubspot">3<' in page
        assert 'data-figure="pages-warp">0<' in page
        assert 'data-figure="items-judged">42<' in page
        assert 'data-figure="items-reported">2<' in page

        async with db.engine.begin() as connection:
            await runs.save_checkpoint(
                connection,
                run.id,
                "elsewhere",
                Checkpoint(
                    "warp",
                    None,
                    "x",
                    {"drift": 2, "in_sync": 45},
                    4,
                    0,
                    hubspot_pages=4,
                    warp_pages=1,
                ),
                60,
            )
        await runs.finish_run(db.engine, run.id, "elsewhere", status="done", report={})
        page = (await client.get("/admin/reconciliation")).text
        assert "http-equiv" not in page  # finished: no more reloading
        assert "done (done)" not in page
        card = page[page.index(f'id="run-{run.id}"') :]
        card = card[: card.index("</div>")]
        assert card.count(">done<") == 1  # the state, once
        assert card.count("(done)") == 0
        assert re.search(r'data-figure="run-duration">\d+ s<', card)
        assert 'data-figure="pages-warp">1<' in card


async def test_a_real_run_records_pages_on_both_sides(db: Database) -> None:
    await add_customers(db, 3)
    async with running(create_app(admin_settings(db, HUBSYNC_DEMO_DATA="false"))) as client:
        await sign_in(client)
        page = await client.get("/admin/reconciliation")
        started = await client.post(
            "/admin/reconciliation/run", data={"mode": "dry_run", "csrftoken": csrf_of(page)}
        )
        assert started.status_code == 303

        async def finished() -> RunRecord | None:
            async with db.engine.connect() as connection:
                [record] = await runs.list_runs(connection)
            return record if record.status != "running" else None

        run = await eventually(finished, timeout=30)
        assert run.status == "done"
        assert run.hubspot_pages >= 1
        assert run.warp_pages >= 1
        shown = (await client.get(started.headers["location"])).text
        assert f'data-figure="pages-warp">{run.warp_pages}<' in shown
        assert run.counts["missing_in_hubspot"] == 3


async def test_a_fix_run_needs_a_confirmation(db: Database) -> None:
    async with running(create_app(admin_settings(db, HUBSYNC_DEMO_DATA="false"))) as client:
        await sign_in(client)
        page = await client.get("/admin/reconciliation")
        asked = await client.post(
            "/admin/reconciliation/run", data={"mode": "fix", "csrftoken": csrf_of(page)}
        )
        assert asked.status_code == 200
        assert "Yes, run the fix" in asked.text
        async with db.engine.connect() as connection:
            assert await runs.list_runs(connection) == []  # nothing started yet
        confirmed = await client.post(
            "/admin/reconciliation/run",
            data={"mode": "fix", "confirm": "yes", "csrftoken": csrf_of(asked)},
        )
        assert confirmed.status_code == 303
        async with db.engine.connect() as connection:
            [run] = await runs.list_runs(connection)
        assert run.mode == "fix"


async def test_drift_per_category_over_the_last_runs_is_a_chart(db: Database) -> None:
    drifts = [1, 4, 2]
    for drift in drifts:
        run = await runs.start_run(
            db.engine, mode="dry_run", trigger="api", owner="o", lease_seconds=30
        )
        assert run is not None
        counts = {"drift": drift, "orphan": 1, "in_sync": 9}
        async with db.engine.begin() as connection:
            await runs.save_checkpoint(
                connection, run.id, "o", Checkpoint("done", None, None, counts, 1, 0), 30
            )
        await runs.finish_run(db.engine, run.id, "o", status="done", report={})
    async with running(create_app(admin_settings(db, HUBSYNC_DEMO_DATA="false"))) as client:
        await sign_in(client)
        page = (await client.get("/admin/reconciliation")).text
    chart = page[page.index('id="drift-chart"') : page.index("</figure>")]
    assert chart.count('class="cat-drift"') == len(drifts) + 1  # a bar per run, the legend
    ticks = [int(t) for t in re.findall(r'text-anchor="end" class="axis">(\d+)<', chart)]
    assert ticks[0] == 0  # the y-axis from 0
    assert 5 <= ticks[-1] < 10  # up to the tallest bar (4 drift + 1 orphan)
    assert len({b - a for a, b in itertools.pairwise(ticks)}) == 1  # even steps
    assert "<title" in chart
    rows = re.findall(r"<tr><td><a [^>]+>\d+</a></td><td>(\d+)</td><td>(\d+)</td>", chart)
    assert [int(drift) for drift, _ in rows] == drifts  # oldest first, the same figures
