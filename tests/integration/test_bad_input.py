"""Hostile or broken input is a 4xx with a JSON body, never a 500; a 500, should one happen,
closes the connection."""

from __future__ import annotations

import uuid

import pytest
from starlette.requests import Request
from starlette.routing import Route

from app.main import create_app
from tests.conftest import Database
from tests.support import running
from tests.webhook_support import BASE, TOKEN, service, settings_for, v3_headers

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
DEEP = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000
HUGE_INT = b"9" * 5000
CUSTOMER = str(uuid.uuid4())
JSON_ROUTES = [
    ("POST", f"/v1/sync/customers/{CUSTOMER}/queue"),
    ("POST", "/v1/sync/customers/queue"),
    ("POST", "/v1/sync/process-queue"),
    ("PUT", "/v1/sync/config"),
    ("POST", "/v1/webhooks/events/reprocess"),
]


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, HUGE_INT, b'{"priority": NaN}'])
async def test_json_bodies_that_cannot_be_read_are_400(db: Database, body: bytes) -> None:
    async with service(db) as client:
        for method, path in JSON_ROUTES:
            response = await client.request(method, path, content=body, headers=AUTH)
            assert response.status_code == 400, (path, response.text)
            assert response.json()["error"] == "bad_request", path
        signed = await client.post("/v1/webhooks/hubspot", content=body, headers=v3_headers(body))
    assert signed.status_code == 400, signed.text


async def test_huge_numbers_in_fields_and_parameters_are_4xx(db: Database) -> None:
    huge = int("9" * 1000)
    async with service(db) as client:
        priority = await client.post(
            f"/v1/sync/customers/{CUSTOMER}/queue", json={"priority": huge}, headers=AUTH
        )
        limit = await client.get("/v1/webhooks/events", params={"limit": "9" * 5000}, headers=AUTH)
        before = await client.get("/v1/webhooks/events", params={"before": "9" * 30}, headers=AUTH)
        reprocess = await client.post(
            "/v1/webhooks/events/reprocess", json={"event_ids": [2**70]}, headers=AUTH
        )
        job = await client.get(f"/v1/sync/jobs/{'9' * 40}", headers=AUTH)
    assert priority.status_code == 422
    assert len(priority.json()["detail"]) < 200
    assert limit.status_code == 422
    assert before.status_code == 422
    assert reprocess.status_code == 400
    assert job.status_code == 404
    for response in (priority, limit, before, reprocess, job):
        assert response.json()["request_id"]


async def test_an_unexpected_error_is_a_json_500_that_closes_the_connection(
    db: Database,
) -> None:
    async def boom(_request: Request) -> None:
        raise RuntimeError("a bug")

    app = create_app(settings_for(db))
    app.router.routes.append(Route("/boom", boom))
    async with running(app, base_url=BASE) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["connection"] == "close"
    assert response.json()["error"] == "internal_error"
    assert "a bug" not in response.text


async def test_body_text_postgresql_cannot_store_is_a_422_naming_the_field(db: Database) -> None:
    """A NUL character (or half a surrogate pair) in a JSON string: PostgreSQL cannot store
    it, so it is refused before anything is written, wherever it is in the body."""
    async with service(db) as client:
        pause = await client.post(
            "/v1/sync/directions/outbound/pause",
            content=b'{"reason": "a\\u0000b"}',
            headers=AUTH,
        )
        half = await client.post(
            "/v1/sync/directions/outbound/pause",
            content=b'{"reason": "a\\ud800b"}',
            headers=AUTH,
        )
        nested = await client.put(
            "/v1/sync/config",
            content=b'{"rules": [{"warp_field": "status", "transform": "x\\u0000"}]}',
            headers=AUTH,
        )
        directions = await client.get("/v1/sync/directions", headers=AUTH)
    assert pause.status_code == 422, pause.text
    assert pause.json()["field"] == "reason"
    assert half.status_code == 422, half.text
    assert half.json()["field"] == "reason"
    assert nested.status_code == 422, nested.text
    assert nested.json()["field"] == "rules[0].transform"
    assert not any(d["paused"] for d in directions.json()["directions"])
