"""Every query parameter is read by one parser (app/api/query.py): a value that cannot be what
the parameter means is a 422 naming the parameter, on every route alike, and never reaches
the database (a 500 from PostgreSQL). Paths that only take POST answer a GET with 405, never
by matching a customer-id route."""

from __future__ import annotations

import pytest

from app.main import create_app
from tests.conftest import Database
from tests.integration.admin_support import API_TOKEN, admin_settings, sign_in
from tests.support import running
from tests.webhook_support import TOKEN, service

AUTH = {"Authorization": f"Bearer {TOKEN}"}
NUL = "a\x00b"

HOSTILE = [
    ("/v1/sync/customers", "after_id", "abc"),
    ("/v1/sync/customers", "after_id", NUL),
    ("/v1/sync/customers", "q", NUL),
    ("/v1/sync/customers", "limit", "abc"),
    ("/v1/sync/failed", "text", NUL),
    ("/v1/sync/failed", "kind", NUL),
    ("/v1/sync/failed", "source", NUL),
    ("/v1/sync/failed", "before_id", "-1"),
    ("/v1/sync/failed", "limit", "0"),
    ("/v1/sync/conflicts", "state", NUL),
    ("/v1/sync/conflicts", "before_id", "x"),
    ("/v1/sync/audit", "limit", "9" * 40),
    ("/v1/webhooks/events", "limit", "9" * 40),
    ("/v1/webhooks/events", "before", "abc"),
    ("/v1/webhooks/events", "status", NUL),
    ("/v1/reconciliation/runs", "limit", "abc"),
    ("/v1/reconciliation/runs", "before", "0"),
    # Given blank, a number, a word or an id is as wrong as any other value.
    ("/v1/sync/conflicts", "limit", ""),
    ("/v1/sync/customers", "after_id", ""),
    ("/v1/webhooks/events", "status", ""),
]


@pytest.mark.parametrize(("path", "name", "value"), HOSTILE)
async def test_a_bad_query_parameter_is_a_422_naming_it(
    db: Database, path: str, name: str, value: str
) -> None:
    async with service(db) as client:
        response = await client.get(path, params={name: value}, headers=AUTH)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["field"] == name
    assert name in body["detail"]


async def test_a_valid_after_id_in_any_uuid_spelling_pages_customers(db: Database) -> None:
    async with service(db) as client:
        upper = await client.get(
            "/v1/sync/customers",
            params={"after_id": "0000000A-0000-0000-0000-000000000000", "q": "Ü"},
            headers=AUTH,
        )
    assert upper.status_code == 200, upper.text
    assert upper.json()["customers"] == []


async def test_a_get_on_the_queue_path_is_405_allowing_post(db: Database) -> None:
    async with service(db) as client:
        listed = await client.get("/v1/sync/customers/queue", headers=AUTH)
        not_an_id = await client.get("/v1/sync/customers/not-a-uuid", headers=AUTH)
        sync_now = await client.post("/v1/sync/customers/queue/to-hubspot", headers=AUTH)
    assert listed.status_code == 405, listed.text
    assert listed.headers["allow"] == "OPTIONS, POST"
    assert listed.json()["error"] == "method_not_allowed"
    # An id that cannot be a UUID matches no route: a 404 for the path, not for a customer.
    assert not_an_id.status_code == 404
    assert "no route" in not_an_id.json()["detail"]
    assert sync_now.status_code == 404
    assert "no route" in sync_now.json()["detail"]


async def test_the_consoles_query_parameters_go_through_the_same_parser(db: Database) -> None:
    async with running(create_app(admin_settings(db))) as client:
        await sign_in(client)
        after = await client.get("/admin/customers", params={"after": "abc"})
        search = await client.get("/admin/customers", params={"q": NUL})
        failed = await client.get("/admin/failed", params={"text": NUL})
        fine = await client.get("/admin/failed", params={"text": "HTTP 400"})
        retry = await client.post(
            "/v1/sync/failed/retry",
            json={"filter": {"text": NUL}},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
    for response, name in ((after, "after"), (search, "q"), (failed, "text")):
        assert response.status_code == 422, response.text
        assert response.json()["field"] == name
    assert fine.status_code == 200
    assert retry.status_code == 422, retry.text
    assert retry.json()["field"] == "filter.text"
