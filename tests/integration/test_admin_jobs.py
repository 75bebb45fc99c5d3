"""The console says who and what: job rows carry the customer's BAN and name (read from WARP
once per page), job ids lead to a job page with each attempt's HubSpot message and
correlation id, the fields written and a timeline; Jobs and Webhook events are in the
navigation."""

from __future__ import annotations

import re

from app.main import create_app
from app.store.queue import QueueRepository
from tests.conftest import Database
from tests.integration.admin_support import API_TOKEN, admin_settings, sign_in
from tests.integration.test_job_api import add_customers
from tests.support import eventually, running

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def demo_settings(db: Database) -> object:
    return admin_settings(
        db,
        HUBSYNC_MODE="demo",
        HUBSYNC_WORKER="true",
        HUBSYNC_DEMO_DATA="false",
        HUBSYNC_RETRY_BASE_SECONDS="0.05",
    )


async def _state(db: Database, job_id: int) -> str | None:
    job = await QueueRepository(db.engine).get(job_id)
    return job.state if job else None


async def test_a_failed_jobs_page_shows_hubspots_message_and_correlation_id(
    db: Database,
) -> None:
    good, bad = await add_customers(db, 2)
    async with running(create_app(demo_settings(db))) as client:  # type: ignore[arg-type]
        await sign_in(client)
        done = (await client.post(f"/v1/sync/customers/{good}/queue", headers=AUTH)).json()
        await eventually(lambda: _is(_state(db, done["job_id"]), "done"), 30)
        faults = await client.put(
            "/_hubspot/_sandbox/faults", json={"error_rate": 1.0, "statuses": [400]}
        )
        assert faults.status_code == 200, faults.text
        failed = (await client.post(f"/v1/sync/customers/{bad}/queue", headers=AUTH)).json()
        await eventually(lambda: _is(_state(db, failed["job_id"]), "failed"), 30)
        job = await QueueRepository(db.engine).get(failed["job_id"])
        assert job is not None
        assert job.last_error
        correlation = re.search(r"correlation id ([^)]+)\)", job.last_error)
        assert correlation, job.last_error
        message = job.last_error.split(": ", 1)[1].split(" (correlation id")[0]

        page = await client.get(f"/admin/jobs/{failed['job_id']}")
        assert page.status_code == 200
        assert message in page.text
        assert correlation.group(1) in page.text
        assert "ZT-000000001" in page.text
        assert "Co 1" in page.text
        assert "attempt 1: failed" in page.text  # the timeline

        written = await client.get(f"/admin/jobs/{done['job_id']}")
        assert "Nothing written." not in written.text
        assert "company_name" in written.text
        assert "Co 0" in written.text

        failed_list = (await client.get("/admin/failed")).text
        assert f'href="/admin/jobs/{failed["job_id"]}"' in failed_list
        assert "ZT-000000001</strong> · Co 1" in failed_list
        jobs_list = (await client.get("/admin/jobs?state=done")).text
        assert "ZT-000000000</strong> · Co 0" in jobs_list
        for href, name in [("/admin/jobs", "Jobs"), ("/admin/events", "Webhook events")]:
            assert (
                f'<a href="{href}">{name}</a>' in jobs_list or f'href="{href}" class' in jobs_list
            )

        missing = await client.get("/admin/jobs/999999999")
        assert missing.status_code == 404
        assert (await client.get("/admin/jobs/abc")).status_code == 404


async def _is(value: object, wanted: str) -> bool:
    return bool(await value == wanted)  # type: ignore[misc]
