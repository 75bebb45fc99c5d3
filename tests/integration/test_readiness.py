"""/readyz names what stops the service from working: a wrong WARP table, webhooks that
cannot be verified (a token without HUBSPOT_CLIENT_SECRET)."""

from __future__ import annotations

from app.main import create_app
from app.settings import Settings
from tests.conftest import Database
from tests.support import running


async def test_readyz_fails_on_a_warp_table_that_does_not_exist(db: Database) -> None:
    settings = Settings.from_mapping(
        {
            **db.env,
            "WARP_CUSTOMERS_TABLE": "no_such_customers",
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_SCHEDULER": "false",
        }
    )
    async with running(create_app(settings)) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["warp_customers_table"] == (
        "no_such_customers does not exist; check WARP_CUSTOMERS_TABLE"
    )


def test_a_token_without_a_client_secret_is_said_at_start_up() -> None:
    settings = Settings.from_mapping({"HUBSPOT_ACCESS_TOKEN": "pat-test"})
    assert settings.startup_warnings() == [
        "HUBSPOT_CLIENT_SECRET is not set: HubSpot's webhooks cannot be verified and are "
        "refused (503) until it is"
    ]
    assert Settings.from_mapping({"HUBSYNC_MODE": "demo"}).startup_warnings() == []
