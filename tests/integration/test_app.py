"""The service skeleton: health, readiness, JSON errors and request ids."""

from __future__ import annotations

import logging

import pytest
from starlette.routing import Route

from app.main import create_app
from app.settings import Settings
from app.store import migrate
from tests.conftest import Database
from tests.support import running


def settings_for(db: Database, **extra: str) -> Settings:
    return Settings.from_mapping(
        {**db.env, "HUBSYNC_WORKER": "false", "HUBSYNC_SCHEDULER": "false", **extra}
    )


async def test_healthz_and_readyz_on_a_migrated_database(db: Database) -> None:
    async with running(create_app(settings_for(db))) as client:
        alive = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert alive.status_code == 200
    assert alive.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "warp_customers_table": "ok",
        "hubspot_portal": "ok",
        "hubspot_properties": "ok",
    }


async def test_readyz_is_503_with_the_reason_when_migrations_are_behind(db: Database) -> None:
    await migrate.downgrade(db.engine, "base")
    async with running(create_app(settings_for(db))) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert "hubsync migrate" in body["checks"]["migrations"]


async def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    settings = Settings.from_mapping(
        {
            "HUBSYNC_MODE": "demo",
            "HUBSYNC_DATABASE_URL": "postgresql://nobody:topsecret@127.0.0.1:1/none",
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_SCHEDULER": "false",
        }
    )
    async with running(create_app(settings)) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unreachable")
    assert "topsecret" not in ready.text


async def test_unknown_route_is_a_json_404_with_a_request_id(db: Database) -> None:
    async with running(create_app(settings_for(db))) as client:
        response = await client.get("/v1/nothing-here", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json() == {
        "error": "not_found",
        "detail": "no route for /v1/nothing-here",
        "request_id": "abc-123",
    }


async def test_wrong_method_is_a_json_405(db: Database) -> None:
    async with running(create_app(settings_for(db))) as client:
        response = await client.post("/healthz")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


async def test_unhandled_error_is_a_json_500_without_traceback_or_secret(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings_for(db, HUBSPOT_CLIENT_SECRET="very-secret-value"))

    async def explode(_request: object) -> None:
        raise RuntimeError("boom with very-secret-value inside")

    app.router.routes.append(Route("/explode", explode))
    with caplog.at_level(logging.ERROR):
        async with running(app) as client:
            response = await client.get("/explode")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    assert "very-secret-value" not in response.text
    assert "boom" not in response.text


async def test_every_response_carries_a_fresh_request_id(db: Database) -> None:
    async with running(create_app(settings_for(db))) as client:
        first = await client.get("/healthz")
        second = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(first.headers["x-request-id"]) == 32
    assert second.headers["x-request-id"] != "bad id with spaces"
