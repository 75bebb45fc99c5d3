"""The portal a database's links belong to: recorded once, every other one refused, moved
only by `relink --reset`; the demo sandbox refilled from links rather than forgetting them;
the sandbox's routes closed to the network."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.api.middleware import with_lifespan_state
from app.cli import main
from app.main import create_app
from app.settings import Settings
from app.store import migrate
from app.store.portal import HUBSPOT, SANDBOX, Portal, recorded_portal, reset_portal
from app.store.sync_state import links
from app.sync.worker import portal
from app.sync.worker.portal import PortalRefusedError, verify_portal
from app.warp.schema import customers_table
from tests.conftest import REPO_ROOT, Database
from tests.integration.test_job_api import add_customers
from tests.support import running

TOKEN = "ops-token-for-tests"


def demo_settings(db: Database) -> Settings:
    return Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_API_TOKENS": TOKEN,
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_SCHEDULER": "false",
            "HUBSYNC_DEMO_DATA": "false",
        }
    )


async def add_link(db: Database, company_id: str = "4242") -> None:
    async with db.engine.begin() as connection:
        await connection.execute(
            links.insert().values(warp_customer_id="c-1", hubspot_company_id=company_id)
        )


async def test_the_first_portal_is_recorded_and_every_other_refused(db: Database) -> None:
    real = Portal(HUBSPOT, "62515")
    await verify_portal(db.engine, real)
    await verify_portal(db.engine, real)  # the same portal again: fine
    with pytest.raises(PortalRefusedError, match=r"portal 62515.*portal 777.*relink --reset"):
        await verify_portal(db.engine, Portal(HUBSPOT, "777"))
    with pytest.raises(PortalRefusedError, match=r"HUBSYNC_MODE=demo.*portal 62515"):
        await verify_portal(db.engine, Portal(SANDBOX, "1"))
    async with db.engine.connect() as connection:
        assert await recorded_portal(connection) == real


async def test_relink_reset_forgets_the_links_and_lets_another_portal_in(db: Database) -> None:
    await verify_portal(db.engine, Portal(HUBSPOT, "62515"))
    await add_link(db)
    async with db.engine.begin() as connection:
        assert await reset_portal(connection) == 1
    await verify_portal(db.engine, Portal(HUBSPOT, "777"))
    async with db.engine.connect() as connection:
        assert await recorded_portal(connection) == Portal(HUBSPOT, "777")
        assert (await connection.execute(select(func.count()).select_from(links))).scalar() == 0


async def test_links_from_before_portals_were_recorded_go_to_the_first_real_token(
    db: Database,
) -> None:
    await migrate.downgrade(db.engine, "0003")  # before portals were recorded
    await add_link(db)
    await migrate.upgrade(db.engine)
    if db.kind == "sqlite":  # the embedded demo file of older versions: the sandbox's
        await verify_portal(db.engine, Portal(SANDBOX, "1"))
        return
    with pytest.raises(PortalRefusedError, match="HUBSYNC_MODE=demo"):
        await verify_portal(db.engine, Portal(SANDBOX, "1"))
    await verify_portal(db.engine, Portal(HUBSPOT, "62515"))
    with pytest.raises(PortalRefusedError, match="portal 777"):
        await verify_portal(db.engine, Portal(HUBSPOT, "777"))


async def test_a_demo_restart_refills_the_sandbox_from_the_links(db: Database) -> None:
    [customer] = await add_customers(db, 1)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running(create_app(demo_settings(db))) as client:
        synced = await client.post(f"/v1/sync/customers/{customer}/to-hubspot", headers=auth)
        assert synced.status_code == 200, synced.text
        company_id = synced.json()["hubspot_company_id"]
    async with running(create_app(demo_settings(db))) as client:
        company = await client.get(f"/_hubspot/crm/v3/objects/companies/{company_id}", headers=auth)
        again = await client.post(f"/v1/sync/customers/{customer}/to-hubspot", headers=auth)
    assert company.status_code == 200, company.text
    assert company.json()["properties"]["name"] == "Co 0"
    assert again.json()["hubspot_company_id"] == company_id
    async with db.engine.connect() as connection:
        rows = (await connection.execute(select(links.c.hubspot_company_id))).scalars().all()
    assert rows == [company_id]


async def test_a_demo_restart_checked_late_still_refills_before_the_first_sync(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The portal check could not run at start (database down then): the first sync checks
    it, and must find the sandbox refilled, not mark the link gone on an empty sandbox."""
    [customer] = await add_customers(db, 1)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running(create_app(demo_settings(db))) as client:
        synced = await client.post(f"/v1/sync/customers/{customer}/to-hubspot", headers=auth)
        company_id = synced.json()["hubspot_company_id"]
    table = customers_table(db.customers_table)
    async with db.engine.begin() as connection:  # a change, so the sync reads the company
        await connection.execute(
            table.update().where(table.c.id == customer).values(company_name="Co renamed")
        )
    real_verify = portal.verify_portal
    calls = 0

    async def down_at_start(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError("the database is not up yet")
        await real_verify(*args, **kwargs)

    monkeypatch.setattr(portal, "verify_portal", down_at_start)
    async with running(create_app(demo_settings(db))) as client:
        again = await client.post(f"/v1/sync/customers/{customer}/to-hubspot", headers=auth)
        company = await client.get(f"/_hubspot/crm/v3/objects/companies/{company_id}", headers=auth)
    assert calls == 2
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "done", again.text
    assert company.json()["properties"]["name"] == "Co renamed"
    async with db.engine.connect() as connection:
        states = (await connection.execute(select(links.c.state))).scalars().all()
    assert states == ["active"]


async def test_the_sandbox_answers_loopback_or_an_api_token_only(db: Database) -> None:
    app = create_app(demo_settings(db))
    async with app.router.lifespan_context(app) as state:
        served = with_lifespan_state(app, state or {})
        remote = httpx.ASGITransport(app=served, client=("203.0.113.9", 40000))
        local = httpx.ASGITransport(app=served, client=("127.0.0.1", 40000))
        async with (
            httpx.AsyncClient(transport=remote, base_url="http://demo") as outsider,
            httpx.AsyncClient(transport=local, base_url="http://demo") as neighbour,
        ):
            refused = await outsider.post("/_hubspot/_sandbox/reset")
            with_token = await outsider.get(
                "/_hubspot/_sandbox/stats", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            wrong_token = await outsider.get(
                "/_hubspot/_sandbox/stats", headers={"Authorization": "Bearer guess"}
            )
            nearby = await neighbour.get("/_hubspot/_sandbox/stats")
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert wrong_token.status_code == 403
    assert with_token.status_code == 200
    assert nearby.status_code == 200


def test_without_a_token_production_refuses_to_build_the_app(db: Database) -> None:
    settings = Settings.from_mapping({**db.env, "HUBSYNC_MODE": "production"})
    with pytest.raises(ValueError, match="HUBSPOT_ACCESS_TOKEN is not set"):
        create_app(settings)


async def run_cli(db: Database, *argv: str) -> tuple[int, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HUBSYNC_", "HUBSPOT_"))},
        "HUBSYNC_DATABASE_URL": db.url,
        "PYTHONPATH": str(REPO_ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_hubsync_relink_shows_the_portal_and_resets_it_on_purpose(db: Database) -> None:
    await verify_portal(db.engine, Portal(HUBSPOT, "62515"))
    await add_link(db)
    code, shown = await run_cli(db, "relink")
    assert code == 0, shown
    assert "links: 1, bound to HubSpot portal 62515" in shown
    async with db.engine.connect() as connection:
        assert await recorded_portal(connection) == Portal(HUBSPOT, "62515")
    code, done = await run_cli(db, "relink", "--reset")
    assert code == 0, done
    assert "forgot 1 links of HubSpot portal 62515" in done
    async with db.engine.connect() as connection:
        assert await recorded_portal(connection) is None
        assert (await connection.execute(select(func.count()).select_from(links))).scalar() == 0


def test_a_standalone_sandbox_off_loopback_needs_an_access_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sandbox", "--host", "0.0.0.0", "--port", "1"]) == 2  # noqa: S104 -- the point
    assert "--access-token" in capsys.readouterr().err
