"""The live dashboard's data: the minute sampler, run by the real scheduler, writes one row per
minute from what the database holds (and drops rows past the retention); the fragments the
page polls render those figures and charts, refuse a bad range with a 422, and send an expired
session to the login."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from app.main import create_app
from app.settings import RateLimit
from app.store.models import (
    GENERAL_BUCKET,
    MinuteSample,
    RateLimitGrant,
    ScheduledJobRecord,
    SyncJob,
    WebhookEvent,
    table_of,
)
from app.store.queue.maintenance import database_now
from app.store.timeseries import RETENTION, minute_of
from app.sync.schedule.registry import JobBook
from app.sync.schedule.sampler import SAMPLER_JOB_ID, schedule_sampler
from app.sync.schedule.scheduler import build_scheduler
from tests.conftest import Database
from tests.integration.admin_support import admin_settings, sign_in
from tests.support import eventually, running

SAMPLES = table_of(MinuteSample)
JOBS = table_of(SyncJob)
EVENTS = table_of(WebhookEvent)
GRANTS = table_of(RateLimitGrant)
CHART_KEYS = ["jobs", "queue", "wait", "webhooks", "hubspot", "rate-limited", "latency"]


async def _now(db: Database) -> datetime:
    """The database's now, early enough in its minute that the test's minute stays put."""
    async with db.engine.connect() as connection:
        now = await database_now(connection)
    if now.second >= 45:
        await asyncio.sleep(61 - now.second)
        async with db.engine.connect() as connection:
            now = await database_now(connection)
    return now


def _job(key: str, state: str, created: datetime, finished: datetime | None) -> dict[str, Any]:
    return {
        "entity_type": "customer",
        "entity_key": key,
        "direction": "to_hubspot",
        "state": state,
        "created_at": created,
        "run_at": created,
        "finished_at": finished,
    }


def _event(key: str, received: datetime) -> dict[str, Any]:
    return {
        "dedup_key": key,
        "subscription_type": "company.propertyChange",
        "raw": {},
        "status": "processed",
        "received_at": received,
    }


async def test_the_scheduler_samples_the_minute_just_over(db: Database) -> None:
    now = await _now(db)
    last = minute_of(now) - timedelta(minutes=1)
    ends = [last + timedelta(seconds=5 + i) for i in range(5)]
    async with db.engine.begin() as connection:
        # Five jobs done in the last minute after waiting 1..5 s, one failed, one done in
        # the minute before (not counted), two waiting (the oldest for 90 s).
        await connection.execute(
            insert(JOBS),
            [
                *(
                    _job(f"done-{i}", "done", end - timedelta(seconds=i + 1), end)
                    for i, end in enumerate(ends)
                ),
                _job("failed", "failed", last, last + timedelta(seconds=30)),
                _job("earlier", "done", last - timedelta(minutes=2), last - timedelta(seconds=1)),
                _job("waiting-1", "pending", now - timedelta(seconds=90), None),
                _job("waiting-2", "pending", now - timedelta(seconds=10), None),
            ],
        )
        await connection.execute(
            insert(EVENTS),
            [_event(f"in-{i}", last + timedelta(seconds=i)) for i in range(3)]
            + [_event("before", last - timedelta(seconds=1))],
        )
        if db.kind == "postgresql":
            await connection.execute(
                insert(GRANTS),
                [
                    {"bucket": GENERAL_BUCKET, "granted_at": last + timedelta(seconds=i)}
                    for i in range(4)
                ]
                + [{"bucket": "hubspot_search", "granted_at": last}],
            )
        # A sample past the retention, and one within it.
        for minute in (now - RETENTION - timedelta(minutes=5), now - timedelta(days=7)):
            await connection.execute(
                insert(SAMPLES).values(
                    minute=minute_of(minute),
                    jobs_done=1,
                    jobs_failed=0,
                    queue_depth=0,
                    oldest_wait_seconds=0,
                    webhook_events=0,
                    hubspot_limit=600,
                )
            )

    scheduler = build_scheduler()
    scheduler.start()
    try:
        await schedule_sampler(
            scheduler, db.engine, RateLimit(100, 10.0), book=JobBook(db.engine), seconds=0.2
        )

        async def sampled() -> Any:
            async with db.engine.connect() as connection:
                return (
                    (await connection.execute(select(SAMPLES).where(SAMPLES.c.minute == last)))
                    .mappings()
                    .first()
                )

        row = await eventually(sampled, timeout=10)

        async def recorded() -> Any:
            async with db.engine.connect() as connection:
                return await connection.scalar(
                    select(ScheduledJobRecord.last_outcome).where(
                        ScheduledJobRecord.job == SAMPLER_JOB_ID
                    )
                )

        assert await eventually(recorded, timeout=10) == "ok"
    finally:
        scheduler.shutdown(wait=False)

    assert (row["jobs_done"], row["jobs_failed"]) == (5, 1)
    assert row["queue_depth"] == 2
    assert 90 <= row["oldest_wait_seconds"] < 120
    assert row["webhook_events"] == 3
    assert row["hubspot_limit"] == 600  # 100 per 10 s
    assert row["hubspot_429"] == 0
    # Waits of 1..5 s: the median is 3 s, p99 interpolates between 4 and 5 s.
    assert row["latency_p50_ms"] == 3000
    assert abs(row["latency_p99_ms"] - 4960) < 1
    if db.kind == "postgresql":  # the deployment's grants log, general bucket only
        assert row["hubspot_requests"] == 4
    else:  # this process's own requests: none were made
        assert row["hubspot_requests"] == 0
    async with db.engine.connect() as connection:
        minutes = list(await connection.scalars(select(SAMPLES.c.minute)))
    assert len(minutes) == 2  # the old one gone, the week-old one and the new one kept


async def _seed_samples(db: Database, now: datetime) -> None:
    current = minute_of(now)
    async with db.engine.begin() as connection:
        await connection.execute(
            insert(SAMPLES),
            [
                {
                    "minute": current - timedelta(minutes=m),
                    "jobs_done": 7,
                    "jobs_failed": 2 if m == 10 else 0,
                    "queue_depth": 30 + m,
                    "oldest_wait_seconds": 12.5,
                    "webhook_events": 4,
                    "hubspot_requests": 120,
                    "hubspot_limit": 600,
                    "hubspot_429": 1 if m == 10 else 0,
                    "latency_p50_ms": 800.0,
                    "latency_p99_ms": 2400.0,
                }
                for m in range(2, 40)
            ],
        )
        await connection.execute(
            insert(JOBS), [_job("broken", "failed", now - timedelta(seconds=5), now)]
        )


async def test_the_fragments_render_the_figures_and_the_charts(db: Database) -> None:
    now = await _now(db)
    await _seed_samples(db, now)
    async with running(create_app(admin_settings(db))) as client:
        await sign_in(client)
        page = await client.get("/admin/")
        assert page.status_code == 200
        assert '<script src="/admin/static/vendor/htmx.min.js" defer></script>' in page.text
        assert 'hx-get="/admin/fragments/figures" hx-trigger="every 5s"' in page.text
        assert 'hx-get="/admin/fragments/charts?range=1h" hx-trigger="every 5s"' in page.text
        week = await client.get("/admin/?range=7d")  # hourly buckets: once a minute
        assert 'hx-get="/admin/fragments/charts?range=7d" hx-trigger="every 60s"' in week.text
        script = await client.get("/admin/static/vendor/htmx.min.js")
        assert script.status_code == 200
        assert 'version:"2.0.11"' in script.text

        figures = await client.get("/admin/fragments/figures", headers={"HX-Request": "true"})
        assert figures.status_code == 200
        assert "<html" not in figures.text  # a fragment, not a page
        assert "content-security-policy" in figures.headers
        assert 'data-figure="queue-failed" href="/admin/failed">1</a>' in figures.text
        assert 'class="alarm"' in figures.text  # failed jobs stand out...
        assert "needs attention" in figures.text  # ...in words too


async def test_every_chart_has_axes_values_and_a_table_for_each_range(db: Database) -> None:
    now = await _now(db)
    await _seed_samples(db, now)
    async with running(create_app(admin_settings(db))) as client:
        await sign_in(client)
        for key, buckets in (("1h", 60), ("24h", 96), ("7d", 168)):
            charts = await client.get(f"/admin/fragments/charts?range={key}")
            assert charts.status_code == 200, key
            html = charts.text
            assert re.findall(r'data-chart="([a-z-]+)"', html) == CHART_KEYS
            for chart in CHART_KEYS:
                block = html.split(f'data-chart="{chart}"')[1].split("</figure>")[0]
                assert f'<title id="chart-{chart}-title">' in block
                assert f'<desc id="chart-{chart}-desc">' in block
                y_axis = block.split('class="axis y-axis"')[1].split("</g>")[0]
                assert len(re.findall(r"<text ", y_axis)) == 3, (key, chart)  # 0, half, top
                x_axis = block.split('class="axis x-axis"')[1].split("</g>")[0]
                assert len(re.findall(r"<text ", x_axis)) >= 5, (key, chart)
                rows = block.split("<tbody>")[1].split("</tbody>")[0]
                assert rows.count("<tr>") == buckets, (key, chart)
            # The same samples, summed per bucket in the database for 24 h and 7 d.
            assert "done: 266 in all" in html, key
            assert "failed: 3 in all" in html, key
            assert "pending: highest 69" in html, key  # 30 + m at m = 2..39
            assert "429s: 1 in all, at most 1" in html, key
        # The hour: 38 sampled minutes of 7 done, 2 failed in one, and the failure just now
        # (the minute in progress, read live).
        hour = (await client.get("/admin/fragments/charts?range=1h")).text
        jobs = hour.split('data-chart="jobs"')[1].split("</figure>")[0]
        assert "done: 266 in all, at most 7" in jobs
        assert "failed: 3 in all, at most 2" in jobs
        assert 'fill="url(#hatch-jobs)"' in jobs  # failed bars hatched, not only red
        hubspot = hour.split('data-chart="hubspot"')[1].split("</figure>")[0]
        live = 0  # requests hubsync made since (start-up checks), read live from the grants
        if db.kind == "postgresql":
            async with db.engine.connect() as connection:
                live = len(
                    list(
                        await connection.scalars(
                            select(GRANTS.c.id).where(
                                GRANTS.c.bucket == GENERAL_BUCKET,
                                GRANTS.c.granted_at >= minute_of(now) - timedelta(minutes=1),
                            )
                        )
                    )
                )
        assert f"requests: {4560 + live} in all, at most 120" in hubspot
        assert "limit: highest 600" in hubspot
        latency = hour.split('data-chart="latency"')[1].split("</figure>")[0]
        assert "p99 (worst minute): highest 2.4 s" in latency

        bad = await client.get("/admin/fragments/charts?range=1y")
        assert bad.status_code == 422
        assert bad.json()["field"] == "range"
        assert (await client.get("/admin/?range=forever")).status_code == 422

    # Without a session a polled fragment sends the page (not the fragment) to the login.
    async with running(create_app(admin_settings(db))) as client:
        expired = await client.get(
            "/admin/fragments/figures",
            headers={"HX-Request": "true", "HX-Current-URL": "http://hubsync.test/admin/"},
        )
        assert expired.status_code == 401
        assert expired.headers["HX-Redirect"] == "/admin/login?next=%2Fadmin%2F"
        assert (await client.get("/admin/fragments/charts")).status_code == 303
