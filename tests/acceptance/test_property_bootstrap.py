"""Issue 12, case 13: the property bootstrap ran once at start, so one transient 429/5xx then
left HubSpot without hubsync's properties and every job failed for good with
PROPERTY_DOESNT_EXIST. Now it is retried with backoff, /readyz says "HubSpot properties not
ready" until it succeeds, and jobs wait for it rather than fail."""

from __future__ import annotations

from typing import Any

from starlette.routing import Mount

from app.main import SANDBOX_MOUNT, create_app
from app.sandbox.access import LoopbackOrToken
from app.sandbox.faults import Faults
from app.sandbox.sandbox import Sandbox
from app.settings import Settings
from tests.acceptance.test_outbound_api import AUTH, Api
from tests.conftest import Database
from tests.support import eventually, running_service


def sandbox_of(app: Any) -> Sandbox:
    [mount] = [r for r in app.routes if isinstance(r, Mount) and r.path == SANDBOX_MOUNT]
    # In demo mode the sandbox's mount is guarded (loopback or an API token): unwrap it.
    inner = mount.app.app if isinstance(mount.app, LoopbackOrToken) else mount.app
    sandbox: Sandbox = inner.state.sandbox
    return sandbox


async def test_a_failed_bootstrap_is_retried_and_jobs_wait_for_it(db: Database) -> None:
    settings = Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_API_TOKENS": "gateway-token",
            "HUBSYNC_SCHEDULER": "false",
            "HUBSYNC_DEMO_DATA": "false",
            "HUBSYNC_RETRY_BASE_SECONDS": "0.1",
            "HUBSPOT_RATE_LIMIT": "1000/1s",
        }
    )
    app = create_app(settings)
    sandbox = sandbox_of(app)
    sandbox.set_faults(Faults(error_rate=1.0, statuses=(503,)))  # HubSpot down at start
    async with running_service(app) as (client, context):
        api = Api(db, client, context, sandbox)
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "HubSpot properties not ready" in ready.json()["checks"]["hubspot_properties"]
        customer = await api.add_customer()
        queued = await client.post(f"/v1/sync/customers/{customer}/queue", headers=AUTH)
        job_id = queued.json()["job_id"]

        async def waiting() -> bool:
            job = (await client.get(f"/v1/sync/jobs/{job_id}", headers=AUTH)).json()
            return job["state"] == "pending" and "not ready" in (job["last_error"] or "")

        await eventually(waiting, timeout=10)
        sandbox.set_faults(Faults())  # HubSpot is back

        async def is_ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(is_ready, timeout=20)
        await eventually(lambda: _is(api.job_state(job_id), "done"), timeout=20)
    assert sandbox.properties.get("warp_ban") is not None
    assert [c for c in sandbox.companies.active() if c.value("warp_ban")]


async def _is(value: Any, expected: str) -> bool:
    return await value == expected
