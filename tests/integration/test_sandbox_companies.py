"""The sandbox's companies API answers like HubSpot: shapes checked against HubSpot's OpenAPI."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.sandbox.config import SandboxConfig
from app.sandbox.testing import RunningSandbox, running_sandbox
from app.settings import RateLimit
from tests.hubspot_shapes import assert_shape

V3 = "/crm/v3/objects/companies"
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

WARP_PROPERTIES: list[dict[str, Any]] = [
    {"name": "warp_ban", "label": "BAN", "type": "string", "fieldType": "text",
     "hasUniqueValue": True},
    {"name": "warp_credit_limit", "label": "Credit limit", "type": "number",
     "fieldType": "number"},
    {"name": "warp_services_voice", "label": "Voice", "type": "enumeration",
     "fieldType": "booleancheckbox"},
    {"name": "warp_status", "label": "Status", "type": "enumeration", "fieldType": "select",
     "options": [{"label": s.title(), "value": s, "hidden": False}
                 for s in ("ACTIVE", "SUSPENDED", "CLOSED")]},
]  # fmt: skip


def assert_strings(obj: dict[str, Any]) -> None:
    assert all(v is None or isinstance(v, str) for v in obj["properties"].values()), obj
    assert ISO_MS.match(obj["createdAt"])
    assert ISO_MS.match(obj["updatedAt"])


@pytest.fixture
async def hub() -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        rate_limit=RateLimit(10_000, 10.0), app_id="4242", search_index_delay_seconds=0
    )
    async with running_sandbox(config) as running:
        client = running.client
        group = await client.post(
            "/crm/v3/properties/companies/groups", json={"name": "warp", "label": "WARP"}
        )
        assert group.status_code == 201
        for prop in WARP_PROPERTIES:
            created = await client.post(
                "/crm/v3/properties/companies", json={**prop, "groupName": "warp"}
            )
            assert created.status_code == 201, created.text
        yield running


async def create(client: httpx.AsyncClient, **properties: Any) -> dict[str, Any]:
    response = await client.post(V3, json={"properties": properties})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_stores_every_value_as_a_string(hub: RunningSandbox) -> None:
    response = await hub.client.post(
        V3,
        json={"properties": {"name": "Acme", "warp_ban": "ZT-1", "warp_credit_limit": 10000.00,
                             "warp_services_voice": True, "warp_status": "ACTIVE"}},
    )  # fmt: skip
    assert response.status_code == 201
    body = response.json()
    assert_shape(body, "SimplePublicObject")
    assert_strings(body)
    props = body["properties"]
    assert props["warp_credit_limit"] == "10000"
    assert props["warp_services_voice"] == "true"
    assert props["hs_object_id"] == body["id"]
    assert ISO_MS.match(props["createdate"])
    assert ISO_MS.match(props["hs_lastmodifieddate"])
    assert body["archived"] is False


async def test_get_with_properties_and_history(hub: RunningSandbox) -> None:
    company = await create(hub.client, name="Acme", warp_credit_limit="1.50")
    patched = await hub.client.patch(
        f"{V3}/{company['id']}", json={"properties": {"name": "Acme Ltd"}}
    )
    assert patched.status_code == 200
    assert_shape(patched.json(), "SimplePublicObject")
    response = await hub.client.get(
        f"{V3}/{company['id']}",
        params={"properties": "name,warp_credit_limit", "propertiesWithHistory": "name"},
    )
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, "SimplePublicObjectWithAssociations")
    assert_strings(body)
    assert body["properties"]["warp_credit_limit"] == "1.5"
    history = body["propertiesWithHistory"]["name"]
    assert [h["value"] for h in history] == ["Acme Ltd", "Acme"]
    assert {(h["sourceType"], h["sourceId"]) for h in history} == {("INTEGRATION", "4242")}


async def test_get_without_properties_returns_the_defaults(hub: RunningSandbox) -> None:
    company = await create(hub.client, name="Acme", domain="acme.com", warp_ban="ZT-9")
    body = (await hub.client.get(f"{V3}/{company['id']}")).json()
    assert set(body["properties"]) == {
        "createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name",
    }  # fmt: skip


async def test_get_by_unique_id_property(hub: RunningSandbox) -> None:
    company = await create(hub.client, name="Acme", warp_ban="ZT-7")
    response = await hub.client.get(f"{V3}/ZT-7", params={"idProperty": "warp_ban"})
    assert response.json()["id"] == company["id"]


async def test_patch_with_empty_string_clears_a_value(hub: RunningSandbox) -> None:
    company = await create(hub.client, name="Acme", domain="acme.com")
    response = await hub.client.patch(f"{V3}/{company['id']}", json={"properties": {"domain": ""}})
    assert response.status_code == 200
    body = (await hub.client.get(f"{V3}/{company['id']}", params={"properties": "domain"})).json()
    assert body["properties"]["domain"] is None  # requested and unset: null, as HubSpot does


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ({"not_a_property": "x"}, "PROPERTY_DOESNT_EXIST"),
        ({"warp_credit_limit": "abc"}, "INVALID_DECIMAL"),
        ({"warp_services_voice": "yes"}, "INVALID_BOOLEAN"),
        ({"warp_status": "BOGUS"}, "INVALID_OPTION"),
        ({"hs_object_id": "5"}, "READ_ONLY_VALUE"),
    ],
)
async def test_invalid_values_are_a_validation_error(
    hub: RunningSandbox, properties: dict[str, str], code: str
) -> None:
    response = await hub.client.post(V3, json={"properties": {"name": "X", **properties}})
    assert response.status_code == 400
    body = response.json()
    assert_shape(body, "Error")
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    assert [e["code"] for e in body["errors"]] == [code]
    assert (await hub.client.get(V3)).json()["results"] == []


async def test_second_company_with_same_unique_value_conflicts(hub: RunningSandbox) -> None:
    first = await create(hub.client, name="Acme", warp_ban="ZT-1")
    response = await hub.client.post(V3, json={"properties": {"name": "Dup", "warp_ban": "ZT-1"}})
    assert response.status_code == 409
    body = response.json()
    assert_shape(body, "Error")
    assert body["category"] == "CONFLICT"
    assert f"already exists. Existing ID: {first['id']}" in body["message"]


async def test_delete_archives_and_the_control_api_restores(hub: RunningSandbox) -> None:
    company = await create(hub.client, name="Acme", warp_ban="ZT-1")
    url = f"{V3}/{company['id']}"
    assert (await hub.client.delete(url)).status_code == 204
    missing = await hub.client.get(url)
    assert missing.status_code == 404
    assert_shape(missing.json(), "Error")
    archived = await hub.client.get(url, params={"archived": "true"})
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    restored = await hub.client.post(f"/_sandbox/companies/{company['id']}/restore")
    assert restored.status_code == 200
    again = await hub.client.get(url, params={"properties": "warp_ban"})
    assert again.json()["properties"]["warp_ban"] == "ZT-1"


async def test_batch_create_reports_partial_success_as_207(hub: RunningSandbox) -> None:
    await create(hub.client, name="Existing", warp_ban="ZT-1")
    inputs = [
        {"objectWriteTraceId": "a", "properties": {"name": "Good", "warp_ban": "ZT-2"}},
        {"objectWriteTraceId": "c", "properties": {"name": "Dup", "warp_ban": "ZT-1"}},
    ]
    response = await hub.client.post(f"{V3}/batch/create", json={"inputs": inputs})
    assert response.status_code == 207
    body = response.json()
    assert_shape(body, "BatchResponseSimplePublicObjectWithErrors")
    assert body["status"] == "COMPLETE"
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["a"]
    assert body["numErrors"] == 1
    by_trace = {e["context"]["objectWriteTraceId"][0]: e for e in body["errors"]}
    assert by_trace["c"]["category"] == "CONFLICT"
    assert "Existing ID:" in by_trace["c"]["message"]


async def test_batch_create_all_good_is_201(hub: RunningSandbox) -> None:
    inputs = [{"properties": {"name": f"C{i}", "warp_ban": f"ZT-{i}"}} for i in range(3)]
    response = await hub.client.post(f"{V3}/batch/create", json={"inputs": inputs})
    assert response.status_code == 201
    body = response.json()
    assert_shape(body, "BatchResponseSimplePublicObject")
    assert len(body["results"]) == 3
    for result in body["results"]:
        assert_strings(result)


async def test_batch_read_by_id_and_by_unique_property(hub: RunningSandbox) -> None:
    company = await create(hub.client, name="Acme", warp_ban="ZT-1")
    response = await hub.client.post(
        f"{V3}/batch/read",
        json={"inputs": [{"id": company["id"]}, {"id": "999999"}], "properties": ["warp_ban"],
              "propertiesWithHistory": []},
    )  # fmt: skip
    assert response.status_code == 207
    body = response.json()
    assert_shape(body, "BatchResponseSimplePublicObjectWithErrors")
    assert body["results"][0]["properties"]["warp_ban"] == "ZT-1"
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"]["ids"] == ["999999"]
    by_ban = await hub.client.post(
        f"{V3}/batch/read",
        json={"idProperty": "warp_ban", "inputs": [{"id": "ZT-1"}], "properties": ["name"],
              "propertiesWithHistory": []},
    )  # fmt: skip
    assert by_ban.status_code == 200
    assert_shape(by_ban.json(), "BatchResponseSimplePublicObject")
    assert by_ban.json()["results"][0]["id"] == company["id"]


async def test_batch_update_applies_good_inputs_next_to_missing_ones(hub: RunningSandbox) -> None:
    a = await create(hub.client, name="A")
    b = await create(hub.client, name="B")
    inputs = [
        {"id": a["id"], "properties": {"name": "A2"}},
        {"id": "424242", "properties": {"name": "ghost"}},
    ]
    response = await hub.client.post(f"{V3}/batch/update", json={"inputs": inputs})
    assert response.status_code == 207
    body = response.json()
    assert_shape(body, "BatchResponseSimplePublicObjectWithErrors")
    assert [r["properties"]["name"] for r in body["results"]] == ["A2"]
    assert [e["category"] for e in body["errors"]] == ["OBJECT_NOT_FOUND"]
    assert body["errors"][0]["context"]["ids"] == ["424242"]
    ok = await hub.client.post(
        f"{V3}/batch/update", json={"inputs": [{"id": b["id"], "properties": {"name": "B2"}}]}
    )
    assert ok.status_code == 200
    assert_shape(ok.json(), "BatchResponseSimplePublicObject")


async def test_batch_refuses_duplicate_ids_and_more_than_100_inputs(hub: RunningSandbox) -> None:
    twice = [{"id": "1", "properties": {}}, {"id": "1", "properties": {}}]
    response = await hub.client.post(f"{V3}/batch/update", json={"inputs": twice})
    assert response.status_code == 400
    too_many = [{"properties": {"name": str(i)}} for i in range(101)]
    response = await hub.client.post(f"{V3}/batch/create", json={"inputs": too_many})
    assert response.status_code == 400
    assert_shape(response.json(), "Error")
    assert (await hub.client.get(V3)).json()["results"] == []


async def test_batch_upsert_creates_then_updates_by_unique_property(hub: RunningSandbox) -> None:
    def inputs(name: str) -> dict[str, Any]:
        return {"inputs": [{"id": "ZT-5", "idProperty": "warp_ban", "properties": {"name": name}}]}

    first = await hub.client.post(f"{V3}/batch/upsert", json=inputs("Acme"))
    assert first.status_code == 200
    assert_shape(first.json(), "BatchResponseSimplePublicUpsertObject")
    created = first.json()["results"][0]
    assert created["new"] is True
    assert created["properties"]["warp_ban"] == "ZT-5"
    second = await hub.client.post(f"{V3}/batch/upsert", json=inputs("Acme Ltd"))
    updated = second.json()["results"][0]
    assert (updated["new"], updated["id"]) == (False, created["id"])
    assert updated["properties"]["name"] == "Acme Ltd"
    # idProperty may also come as a query parameter.
    third = await hub.client.post(
        f"{V3}/batch/upsert",
        params={"idProperty": "warp_ban"},
        json={"inputs": [{"id": "ZT-6", "properties": {"warp_credit_limit": "7"}},
                         {"id": "ZT-5", "properties": {"name": "Acme"}}]},
    )  # fmt: skip
    assert third.status_code == 200
    assert_shape(third.json(), "BatchResponseSimplePublicUpsertObject")
    by_ban = {r["properties"]["warp_ban"]: r for r in third.json()["results"]}
    assert (by_ban["ZT-6"]["new"], by_ban["ZT-5"]["id"]) == (True, created["id"])


async def test_batch_archive_is_204(hub: RunningSandbox) -> None:
    a = await create(hub.client, name="A")
    response = await hub.client.post(
        f"{V3}/batch/archive", json={"inputs": [{"id": a["id"]}, {"id": "999"}]}
    )
    assert response.status_code == 204
    assert (await hub.client.get(f"{V3}/{a['id']}")).status_code == 404


async def test_list_pages_with_after_cursor(hub: RunningSandbox) -> None:
    ids = [(await create(hub.client, name=f"C{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2", "properties": "name"}
    while True:
        page = (await hub.client.get(V3, params=params)).json()
        assert_shape(page, "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging")
        seen += [r["id"] for r in page["results"]]
        if "paging" not in page:
            break
        params["after"] = page["paging"]["next"]["after"]
    assert seen == ids


async def test_merge_gives_a_new_id_that_old_ids_resolve_to(hub: RunningSandbox) -> None:
    primary = await create(hub.client, name="Primary", warp_ban="ZT-1")
    other = await create(hub.client, name="Other", domain="other.com", warp_ban="ZT-2")
    response = await hub.client.post(
        f"{V3}/merge", json={"primaryObjectId": primary["id"], "objectIdToMerge": other["id"]}
    )
    assert response.status_code == 200
    merged = response.json()
    assert_shape(merged, "SimplePublicObject")
    assert merged["id"] not in (primary["id"], other["id"])
    assert merged["properties"]["name"] == "Primary"  # the primary's values win
    assert merged["properties"]["domain"] == "other.com"  # blanks filled from the other
    assert set(merged["properties"]["hs_merged_object_ids"].split(";")) == {
        primary["id"], other["id"],
    }  # fmt: skip
    for old in (primary["id"], other["id"]):
        resolved = await hub.client.get(f"{V3}/{old}")
        assert resolved.status_code == 200
        assert resolved.json()["id"] == merged["id"]
    listed = (await hub.client.get(V3)).json()["results"]
    assert [c["id"] for c in listed] == [merged["id"]]


async def test_date_based_paths_serve_the_same_companies(hub: RunningSandbox) -> None:
    dated = "/crm/objects/2026-03/companies"
    response = await hub.client.post(dated, json={"properties": {"name": "Dated"}})
    assert response.status_code == 201
    assert_shape(response.json(), "SimplePublicObject", "crm-companies-2026-03.json")
    same = await hub.client.get(f"{V3}/{response.json()['id']}")
    assert same.json()["properties"]["name"] == "Dated"
    listed = (await hub.client.get(dated)).json()
    assert_shape(
        listed,
        "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging",
        "crm-companies-2026-03.json",
    )
