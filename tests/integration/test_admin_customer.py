"""The customer page says what hubsync knows and how old it is: HubSpot's last-seen value
(field memory, said so) with its age, each field in sync or differing; "read HubSpot now"
reads the company live and shows what field memory did not know (an edit whose webhook was
lost); after "sync now" the page shows the job's outcome."""

from __future__ import annotations

import re

from app.main import create_app
from app.store.admin_audit import recent_actions
from app.store.queue import QueueRepository
from tests.conftest import Database
from tests.integration.admin_support import API_TOKEN, admin_settings, csrf_of, sign_in
from tests.integration.test_job_api import add_customers
from tests.support import eventually, running

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def _done(db: Database, job_id: int) -> bool:
    job = await QueueRepository(db.engine).get(job_id)
    return job is not None and job.state == "done"


async def test_read_hubspot_now_shows_what_field_memory_did_not_know(db: Database) -> None:
    [customer_id] = await add_customers(db, 1)
    settings = admin_settings(
        db, HUBSYNC_MODE="demo", HUBSYNC_WORKER="true", HUBSYNC_DEMO_DATA="false"
    )
    async with running(create_app(settings)) as client:
        await sign_in(client)
        page = await client.get(f"/admin/customers/{customer_id}")
        synced = await client.post(
            f"/admin/customers/{customer_id}/sync", data={"csrftoken": csrf_of(page)}
        )
        assert synced.status_code == 303
        job_id = int(re.search(r"job=(\d+)", synced.headers["location"]).group(1))  # type: ignore[union-attr]
        await eventually(lambda: _done(db, job_id), 30)
        after_sync = (await client.get(synced.headers["location"])).text
        assert f"Job {job_id}</a>: done" in after_sync  # the outcome of "sync now"
        assert "company_name → HubSpot" in after_sync

        assert "is hubsync's field memory" in after_sync
        assert "hubsync last wrote it" in after_sync  # the sync's write, HubSpot's time
        assert "last seen" in after_sync
        assert " ago" in after_sync
        row = re.search(r'id="field-company_name">(.*?)</tr>', after_sync, re.S)
        assert row
        assert "in sync" in row.group(1)

        # A person edits the company in HubSpot and the webhook never arrives.
        companies = (await client.get("/_hubspot/_sandbox/companies")).json()["results"]
        [company] = [c for c in companies if c["properties"].get("warp_ban") == "ZT-000000000"]
        dropped = await client.put("/_hubspot/_sandbox/faults", json={"drop_webhooks": 1.0})
        assert dropped.status_code == 200, dropped.text
        edited = await client.patch(
            f"/_hubspot/_sandbox/companies/{company['id']}",
            json={"properties": {"name": "Renamed In HubSpot"}},
        )
        assert edited.status_code == 200, edited.text

        stale = (await client.get(f"/admin/customers/{customer_id}")).text
        assert "Renamed In HubSpot" not in stale  # field memory does not know
        live = await client.post(
            f"/admin/customers/{customer_id}/read-hubspot", data={"csrftoken": csrf_of(stale)}
        )
        assert live.status_code == 200
        assert "1 field(s) differ from what field memory knew" in live.text
        row = re.search(r'id="field-company_name">(.*?)</tr>', live.text, re.S)
        assert row
        assert "Renamed In HubSpot" in row.group(1)
        assert "memory did not know" in row.group(1)
        assert "differs in HubSpot now" in row.group(1)

        refused = await client.post(f"/admin/customers/{customer_id}/read-hubspot")
        assert refused.status_code == 403  # no CSRF token
    async with db.engine.connect() as connection:
        [entry, *_] = await recent_actions(connection, action_prefix="customer.read")
    assert entry.action == "customer.read_hubspot"
