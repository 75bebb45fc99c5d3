"""Sandbox search (filters, sort, paging, limits) and the properties API used by the bootstrap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.sandbox.config import SandboxConfig
from app.sandbox.testing import RunningSandbox, running_sandbox
from app.settings import RateLimit
from tests.hubspot_shapes import PROPERTIES_V3, assert_shape

SEARCH = "/crm/v3/objects/companies/search"
PROPS = "/crm/v3/properties/companies"


@pytest.fixture
async def hub() -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        rate_limit=RateLimit(10_000, 10.0),
        search_rate_limit=RateLimit(10_000, 1.0),
        search_index_delay_seconds=0,  # these tests search right after writing
    )
    async with running_sandbox(config) as running:
        yield running


@pytest.fixture
async def seeded(hub: RunningSandbox) -> RunningSandbox:
    client = hub.client
    await client.post(f"{PROPS}/groups", json={"name": "warp", "label": "WARP"})
    for prop in (
        {"name": "warp_ban", "type": "string", "fieldType": "text", "hasUniqueValue": True},
        {"name": "warp_credit_limit", "type": "number", "fieldType": "number"},
    ):
        response = await client.post(
            PROPS, json={**prop, "label": prop["name"], "groupName": "warp"}
        )
        assert response.status_code == 201
    rows = [("Acme", "ZT-1", "500"), ("Beta", "ZT-2", "1500"), ("Gamma", "ZT-3", None),
            ("acme east", "ZT-4", "2500")]  # fmt: skip
    for name, ban, limit in rows:
        properties = {"name": name, "warp_ban": ban}
        if limit is not None:
            properties["warp_credit_limit"] = limit
        assert (await client.post("/crm/v3/objects/companies", json={"properties": properties})
                ).status_code == 201  # fmt: skip
    return hub


async def search(hub: RunningSandbox, body: dict[str, Any]) -> dict[str, Any]:
    response = await hub.client.post(SEARCH, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert_shape(result, "CollectionResponseWithTotalSimplePublicObject")
    return result


def names(result: dict[str, Any]) -> list[str]:
    return [r["properties"]["name"] for r in result["results"]]


def one(name: str, operator: str, **extra: Any) -> dict[str, Any]:
    return {"filterGroups": [{"filters": [{"propertyName": name, "operator": operator, **extra}]}],
            "properties": ["name", "warp_ban", "warp_credit_limit"]}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (one("warp_ban", "EQ", value="zt-2"), ["Beta"]),  # text compares case-insensitively
        (one("warp_credit_limit", "GT", value="1000"), ["Beta", "acme east"]),
        (one("warp_credit_limit", "LTE", value="1500"), ["Acme", "Beta"]),
        (one("warp_credit_limit", "NEQ", value="500"), ["Beta", "Gamma", "acme east"]),
        (one("warp_ban", "IN", values=["ZT-1", "ZT-3"]), ["Acme", "Gamma"]),
        (one("warp_credit_limit", "HAS_PROPERTY"), ["Acme", "Beta", "acme east"]),
        (one("warp_credit_limit", "NOT_HAS_PROPERTY"), ["Gamma"]),
        (one("warp_credit_limit", "BETWEEN", value="600", highValue="2000"), ["Beta"]),
    ],
)
async def test_filters(seeded: RunningSandbox, body: dict[str, Any], expected: list[str]) -> None:
    result = await search(seeded, body)
    assert names(result) == expected
    assert result["total"] == len(expected)
    for row in result["results"]:
        assert all(v is None or isinstance(v, str) for v in row["properties"].values())


async def test_groups_are_ored_and_filters_anded(seeded: RunningSandbox) -> None:
    body = {"filterGroups": [
        {"filters": [{"propertyName": "name", "operator": "EQ", "value": "gamma"}]},
        {"filters": [{"propertyName": "warp_credit_limit", "operator": "GTE", "value": "500"},
                     {"propertyName": "warp_credit_limit", "operator": "LT", "value": "2000"}]},
    ]}  # fmt: skip
    assert names(await search(seeded, body)) == ["Acme", "Beta", "Gamma"]


async def test_sort_and_paging_by_object_id(seeded: RunningSandbox) -> None:
    body: dict[str, Any] = {
        "sorts": [{"propertyName": "warp_credit_limit", "direction": "DESCENDING"}],
        "properties": ["name"],
    }
    assert names(await search(seeded, body)) == ["acme east", "Beta", "Acme", "Gamma"]
    seen: list[str] = []
    page: dict[str, Any] = {"limit": 3, "sorts": [{"propertyName": "hs_object_id",
                                                    "direction": "ASCENDING"}]}  # fmt: skip
    while True:
        result = await search(seeded, page)
        seen += [r["id"] for r in result["results"]]
        if "paging" not in result:
            break
        page["after"] = result["paging"]["next"]["after"]
    assert seen == sorted(seen, key=int)
    assert len(seen) == 4


async def test_search_answers_without_rate_limit_headers(seeded: RunningSandbox) -> None:
    response = await seeded.client.post(SEARCH, json={})
    assert not [h for h in response.headers if h.lower().startswith("x-hubspot-ratelimit")]


async def test_limit_over_200_and_paging_past_10000_are_refused(hub: RunningSandbox) -> None:
    too_big = await hub.client.post(SEARCH, json={"limit": 201})
    assert too_big.status_code == 400
    assert_shape(too_big.json(), "Error")
    past_cap = await hub.client.post(SEARCH, json={"limit": 100, "after": "10000"})
    assert past_cap.status_code == 400
    assert past_cap.json()["category"] == "VALIDATION_ERROR"
    at_edge = await hub.client.post(SEARCH, json={"limit": 100, "after": "9900"})
    assert at_edge.status_code == 200


# -- properties API --------------------------------------------------------------------


async def test_starts_with_defaults_and_no_warp_properties(hub: RunningSandbox) -> None:
    response = await hub.client.get(PROPS)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, "CollectionResponsePropertyNoPaging", "crm-properties-v3.json")
    names_ = {p["name"] for p in body["results"]}
    assert {"name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"} <= names_
    assert not [n for n in names_ if n.startswith("warp_")]


async def test_bootstrap_creates_groups_and_properties(hub: RunningSandbox) -> None:
    group = await hub.client.post(f"{PROPS}/groups", json={"name": "warp", "label": "WARP"})
    assert group.status_code == 201
    assert_shape(group.json(), "PropertyGroup", "crm-properties-v3.json")
    groups = (await hub.client.get(f"{PROPS}/groups")).json()
    assert_shape(groups, "CollectionResponsePropertyGroupNoPaging", "crm-properties-v3.json")
    assert "warp" in {g["name"] for g in groups["results"]}
    spec = {"name": "warp_services_voice", "label": "Voice", "type": "enumeration",
            "fieldType": "booleancheckbox", "groupName": "warp"}  # fmt: skip
    created = await hub.client.post(PROPS, json=spec)
    assert created.status_code == 201
    prop = created.json()
    assert_shape(prop, "Property", "crm-properties-v3.json")
    assert {o["value"] for o in prop["options"]} == {"true", "false"}
    again = await hub.client.post(PROPS, json=spec)
    assert again.status_code == 409
    assert_shape(again.json(), "Error", "crm-properties-v3.json")
    fetched = await hub.client.get(f"{PROPS}/warp_services_voice")
    assert fetched.json()["groupName"] == "warp"
    patched = await hub.client.patch(f"{PROPS}/warp_services_voice", json={"label": "Voice on"})
    assert patched.status_code == 200
    assert patched.json()["label"] == "Voice on"
    missing = await hub.client.get(f"{PROPS}/warp_nothing")
    assert missing.status_code == 404


async def test_unique_flag_only_at_creation_and_at_most_ten(hub: RunningSandbox) -> None:
    await hub.client.post(f"{PROPS}/groups", json={"name": "warp", "label": "WARP"})
    for i in range(10):
        response = await hub.client.post(
            PROPS,
            json={"name": f"warp_key_{i}", "label": f"Key {i}", "type": "string",
                  "fieldType": "text", "groupName": "warp", "hasUniqueValue": True},
        )  # fmt: skip
        assert response.status_code == 201
        assert response.json()["hasUniqueValue"] is True
    eleventh = await hub.client.post(
        PROPS,
        json={"name": "warp_key_10", "label": "Key 10", "type": "string", "fieldType": "text",
              "groupName": "warp", "hasUniqueValue": True},
    )  # fmt: skip
    assert eleventh.status_code == 400
    change = await hub.client.patch(f"{PROPS}/warp_key_0", json={"hasUniqueValue": False})
    assert change.status_code == 400


async def test_property_in_unknown_group_is_refused(hub: RunningSandbox) -> None:
    response = await hub.client.post(
        PROPS, json={"name": "warp_x", "label": "X", "type": "string", "fieldType": "text",
                     "groupName": "nowhere"},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


async def test_property_batch_create_and_read(hub: RunningSandbox) -> None:
    await hub.client.post(f"{PROPS}/groups", json={"name": "warp", "label": "WARP"})
    good = {"name": "warp_status", "label": "Status", "type": "string", "fieldType": "text",
            "groupName": "warp"}  # fmt: skip
    bad = {**good, "name": "warp_bad", "fieldType": "booleancheckbox"}
    created = await hub.client.post(f"{PROPS}/batch/create", json={"inputs": [good, bad]})
    assert created.status_code == 207
    assert_shape(created.json(), "BatchResponsePropertyWithErrors", "crm-properties-v3.json")
    assert [p["name"] for p in created.json()["results"]] == ["warp_status"]
    read = await hub.client.post(
        f"{PROPS}/batch/read",
        json={"inputs": [{"name": "warp_status"}, {"name": "name"}], "archived": False,
              "dataSensitivity": "non_sensitive"},
    )  # fmt: skip
    assert read.status_code == 200
    assert_shape(read.json(), "BatchResponseProperty", "crm-properties-v3.json")


async def test_search_can_lag_behind_writes_like_hubspots_index() -> None:
    config = SandboxConfig(search_index_delay_seconds=0.3)
    async with running_sandbox(config) as hub:
        company = (
            await hub.client.post("/crm/v3/objects/companies", json={"properties": {"name": "A"}})
        ).json()
        assert (await search(hub, {}))["total"] == 0  # not indexed yet
        await asyncio.sleep(0.35)
        await hub.client.patch(
            f"/crm/v3/objects/companies/{company['id']}", json={"properties": {"name": "B"}}
        )
        result = await search(hub, {"properties": ["name"]})
        assert names(result) == ["A"]  # the index still has the old value
        await asyncio.sleep(0.35)
        assert names(await search(hub, {"properties": ["name"]})) == ["B"]


async def test_search_lags_writes_by_default() -> None:
    assert SandboxConfig().search_index_delay_seconds >= 1.0
    async with running_sandbox() as hub:
        await hub.client.post("/crm/v3/objects/companies", json={"properties": {"name": "A"}})
        assert (await search(hub, {}))["total"] == 0


async def test_unset_properties_come_back_as_null_like_the_real_api() -> None:
    async with running_sandbox(SandboxConfig(search_index_delay_seconds=0)) as hub:
        company = (
            await hub.client.post("/crm/v3/objects/companies", json={"properties": {"name": "A"}})
        ).json()
        body = (
            await hub.client.get(
                f"/crm/v3/objects/companies/{company['id']}", params={"properties": "domain"}
            )
        ).json()
        assert body["properties"]["domain"] is None
        found = await search(hub, {"properties": ["name", "domain"]})
        assert found["results"][0]["properties"]["domain"] is None
        assert_shape(found, "CollectionResponseWithTotalSimplePublicObject")
        listed = await hub.client.get("/crm/v3/objects/companies", params={"properties": "domain"})
        assert listed.json()["results"][0]["properties"]["domain"] is None
        # Not requested, not answered: the defaults leave out what has no value.
        plain = await hub.client.get(f"/crm/v3/objects/companies/{company['id']}")
        assert "domain" not in plain.json()["properties"]


async def test_a_requested_property_that_does_not_exist_is_left_out() -> None:
    """HubSpot answers an unset property as null but leaves out a name that is no property
    at all, so a typo shows as a missing key: on a read, a list, a batch read and a search."""
    async with running_sandbox(SandboxConfig(search_index_delay_seconds=0)) as hub:
        company = (
            await hub.client.post("/crm/v3/objects/companies", json={"properties": {"name": "A"}})
        ).json()
        wanted = ["name", "domain", "nmae"]
        read = await hub.client.get(
            f"/crm/v3/objects/companies/{company['id']}", params={"properties": ",".join(wanted)}
        )
        listed = await hub.client.get(
            "/crm/v3/objects/companies", params={"properties": ",".join(wanted)}
        )
        batch = await hub.client.post(
            "/crm/v3/objects/companies/batch/read",
            json={"inputs": [{"id": company["id"]}], "properties": wanted},
        )
        found = await search(hub, {"properties": wanted})
        for answer in (read.json(), listed.json()["results"][0], batch.json()["results"][0],
                       found["results"][0]):  # fmt: skip
            assert answer["properties"]["name"] == "A"
            assert answer["properties"]["domain"] is None  # a property, unset: null
            assert "nmae" not in answer["properties"]  # no such property: left out
        only_typos = await hub.client.get(
            f"/crm/v3/objects/companies/{company['id']}", params={"properties": "nmae"}
        )
        assert set(only_typos.json()["properties"]) == {
            "createdate", "hs_lastmodifieddate", "hs_object_id"
        }  # fmt: skip


async def test_properties_and_groups_are_archived_with_204(hub: RunningSandbox) -> None:
    client = hub.client
    assert (await client.post(f"{PROPS}/groups", json={"name": "old", "label": "Old"})).is_success
    for name in ("old_a", "old_b", "old_c"):
        definition = {"name": name, "label": name, "type": "string", "fieldType": "text"}
        created = await client.post(PROPS, json={**definition, "groupName": "old"})
        assert created.status_code == 201, created.text
    assert (await client.delete(f"{PROPS}/old_a")).status_code == 204
    archived = await client.post(
        f"{PROPS}/batch/archive", json={"inputs": [{"name": "old_b"}, {"name": "old_c"}]}
    )
    assert archived.status_code == 204, archived.text
    live = {p["name"] for p in (await client.get(PROPS)).json()["results"]}
    assert not live & {"old_a", "old_b", "old_c"}
    assert (await client.get(f"{PROPS}/old_a")).status_code == 404
    gone = await client.get(f"{PROPS}/old_a", params={"archived": "true"})
    assert gone.json()["archived"] is True
    assert_shape(gone.json(), "Property", PROPERTIES_V3)
    listed = await client.get(PROPS, params={"archived": "true"})
    assert {p["name"] for p in listed.json()["results"]} == {"old_a", "old_b", "old_c"}
    assert (await client.delete(f"{PROPS}/groups/old")).status_code == 204
    assert (await client.get(f"{PROPS}/groups/old")).status_code == 404
    # HubSpot's own are not archivable; unknown names are a 404.
    assert (await client.delete(f"{PROPS}/name")).status_code == 400
    assert (await client.delete(f"{PROPS}/no_such")).status_code == 404
    assert (await client.delete(f"{PROPS}/groups/no_such")).status_code == 404
    for dated in ("/crm/properties/2026-03/companies",):
        assert (await client.delete(f"{dated}/no_such")).status_code == 404
