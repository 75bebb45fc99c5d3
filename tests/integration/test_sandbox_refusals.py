"""The sandbox refuses what HubSpot refuses, with HubSpot's error bodies, and never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.sandbox.config import SandboxConfig
from app.sandbox.testing import RunningSandbox, running_sandbox
from app.settings import RateLimit
from tests.hubspot_shapes import assert_shape

V3 = "/crm/v3/objects/companies"
DATED = "/crm/objects/2026-03/companies"
PROPERTIES = "/crm/v3/properties/companies"


@pytest.fixture
async def hub() -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        rate_limit=RateLimit(100_000, 10.0),
        search_rate_limit=RateLimit(100_000, 1.0),
        search_index_delay_seconds=0,
    )
    async with running_sandbox(config) as running:
        client = running.client
        assert (
            await client.post(f"{PROPERTIES}/groups", json={"name": "warp", "label": "W"})
        ).is_success
        for prop in (
            {"name": "warp_ban", "type": "string", "fieldType": "text", "hasUniqueValue": True},
            {"name": "warp_credit_limit", "type": "number", "fieldType": "number"},
            {"name": "warp_services_voice", "type": "enumeration", "fieldType": "booleancheckbox"},
            {"name": "warp_since", "type": "date", "fieldType": "date"},
        ):
            answer = await client.post(PROPERTIES, json={**prop, "label": "x", "groupName": "warp"})
            assert answer.status_code == 201, answer.text
        yield running


def refused(answer: Any, status: int = 400, category: str = "VALIDATION_ERROR") -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert_shape(body, "Error")
    assert body["category"] == category
    return body


def good(n: int, **extra: Any) -> dict[str, Any]:
    return {"name": f"C{n}", "warp_credit_limit": "100", **extra}


# -- whole-batch refusals ------------------------------------------------------------------


@pytest.mark.parametrize("root", [V3, DATED])
async def test_one_bad_value_refuses_the_whole_batch_create(hub: RunningSandbox, root: str) -> None:
    inputs = [{"properties": good(n)} for n in range(100)]
    inputs[57]["properties"]["warp_credit_limit"] = "lots"
    body = refused(await hub.client.post(f"{root}/batch/create", json={"inputs": inputs}))
    assert body["message"].startswith("Property values were not valid")
    assert body["context"]["propertyName"] == ["warp_credit_limit"]
    assert len(hub.sandbox.companies) == 0  # not one of the 99 good inputs was written


async def test_one_bad_value_refuses_the_whole_batch_update_and_upsert(hub: RunningSandbox) -> None:
    made = await hub.client.post(
        f"{V3}/batch/create",
        json={"inputs": [{"properties": good(n, warp_ban=f"ZT-{n}")} for n in range(3)]},
    )
    ids = [r["id"] for r in made.json()["results"]]
    update = [{"id": i, "properties": {"name": "changed"}} for i in ids]
    update[2]["properties"]["warp_services_voice"] = "maybe"
    refused(await hub.client.post(f"{V3}/batch/update", json={"inputs": update}))
    upsert = [
        {"id": f"ZT-{n}", "idProperty": "warp_ban", "properties": {"name": "changed"}}
        for n in range(3)
    ]
    upsert[0]["properties"]["warp_since"] = "2026-01-01T10:00:00Z"
    refused(await hub.client.post(f"{V3}/batch/upsert", json={"inputs": upsert}))
    assert {c.value("name") for c in hub.sandbox.companies.active()} == {"C0", "C1", "C2"}


@pytest.mark.parametrize(
    ("inputs", "params", "fragment"),
    [
        ([{"id": "ZT-1", "properties": {"name": "x"}}], {}, "needs an idProperty"),
        ([{"id": "1", "idProperty": "hs_object_id", "properties": {}}], {}, "hs_object_id"),
        ([{"id": "1", "properties": {}}], {"idProperty": "hs_object_id"}, "hs_object_id"),
        ([{"id": "Acme", "idProperty": "name", "properties": {}}], {}, "non-unique property name"),
    ],
)
async def test_upsert_needs_a_unique_id_property(
    hub: RunningSandbox, inputs: list[Any], params: dict[str, str], fragment: str
) -> None:
    answer = await hub.client.post(f"{V3}/batch/upsert", params=params, json={"inputs": inputs})
    assert fragment in refused(answer)["message"]
    assert len(hub.sandbox.companies) == 0


@pytest.mark.parametrize("root", [V3, DATED])
async def test_update_by_the_record_id_as_id_property_is_refused(
    hub: RunningSandbox, root: str
) -> None:
    """HubSpot takes `hs_object_id` for reads, but an update by it is an update by a
    non-unique property: 400, the batch and the single PATCH alike, nothing written."""
    company = (await hub.client.post(root, json={"properties": {"name": "A"}})).json()
    batch = {"inputs": [{"id": company["id"], "idProperty": "hs_object_id",
                         "properties": {"name": "B"}}]}  # fmt: skip
    body = refused(await hub.client.post(f"{root}/batch/update", json=batch))
    assert "hs_object_id" in body["message"]
    patched = await hub.client.patch(
        f"{root}/{company['id']}", params={"idProperty": "hs_object_id"},
        json={"properties": {"name": "B"}},
    )  # fmt: skip
    assert "hs_object_id" in refused(patched)["message"]
    assert hub.sandbox.companies.require(company["id"]).value("name") == "A"


@pytest.mark.parametrize("associations", ["bad", {}, [1], [{"to": {"id": 5}, "types": []}],
                                          [{"to": {"id": "1"}, "types": [{"x": 1}]}]])  # fmt: skip
async def test_batch_create_with_malformed_associations_is_refused(
    hub: RunningSandbox, associations: Any
) -> None:
    inputs = [{"properties": {"name": "A"}, "associations": associations}]
    body = refused(await hub.client.post(f"{V3}/batch/create", json={"inputs": inputs}))
    assert "associations" in body["message"]
    single = {"properties": {"name": "A"}, "associations": associations}
    assert "associations" in refused(await hub.client.post(V3, json=single))["message"]
    assert len(hub.sandbox.companies) == 0


# -- strict values (HubSpot since January 2025) --------------------------------------------


@pytest.mark.parametrize(
    ("properties", "name"),
    [
        ({"warp_credit_limit": " 100"}, "warp_credit_limit"),
        ({"warp_credit_limit": "100 "}, "warp_credit_limit"),
        ({"warp_services_voice": " true"}, "warp_services_voice"),
        ({"warp_services_voice": "false "}, "warp_services_voice"),
        ({"warp_since": "2026-03-01T12:30:00Z"}, "warp_since"),
        ({"warp_since": "1772368200000"}, "warp_since"),  # 2026-03-01 12:30 UTC in epoch ms
        ({"warp_since": " 2026-03-01"}, "warp_since"),
    ],
)
async def test_spaces_around_numbers_and_booleans_and_dates_with_a_time_are_refused(
    hub: RunningSandbox, properties: dict[str, str], name: str
) -> None:
    body = refused(await hub.client.post(V3, json={"properties": properties}))
    assert body["errors"][0]["context"]["propertyName"] == [name]


@pytest.mark.parametrize("value", ["2026-03-01", "1772323200000", "2026-03-01T00:00:00Z"])
async def test_a_date_at_midnight_utc_is_taken(hub: RunningSandbox, value: str) -> None:
    answer = await hub.client.post(V3, json={"properties": {"warp_since": value}})
    assert answer.status_code == 201, answer.text
    assert answer.json()["properties"]["warp_since"] == "2026-03-01"


@pytest.mark.parametrize("root", [V3, DATED])
async def test_patch_without_properties_is_refused(hub: RunningSandbox, root: str) -> None:
    company = (await hub.client.post(root, json={"properties": {"name": "A"}})).json()
    for body in ({"properties": {}}, {}):
        answer = await hub.client.patch(f"{root}/{company['id']}", json=body)
        assert refused(answer)["message"] == (
            "No properties found to update, please provide at least one."
        )


async def test_a_crm_edit_without_properties_is_refused(hub: RunningSandbox) -> None:
    """The control route a person's CRM edit goes through (the README's tour) answers a body
    without `properties` as HubSpot's PATCH does, not with a silent 200."""
    company = (await hub.client.post(V3, json={"properties": {"name": "A"}})).json()
    for body in ({}, {"name": "B"}, {"properties": {}}):
        answer = await hub.client.patch(f"/_sandbox/companies/{company['id']}", json=body)
        assert refused(answer)["message"] == (
            "No properties found to update, please provide at least one."
        ), body
    edited = await hub.client.patch(
        f"/_sandbox/companies/{company['id']}", json={"properties": {"name": "B"}}
    )
    assert edited.status_code == 200, edited.text


async def test_a_crm_edit_finds_the_company_by_a_unique_property(hub: RunningSandbox) -> None:
    made = await hub.client.post(V3, json={"properties": {"name": "A", "warp_ban": "ZT-1"}})
    edited = await hub.client.patch(
        "/_sandbox/companies/ZT-1",
        params={"idProperty": "warp_ban"},
        json={"properties": {"name": "B"}},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["id"] == made.json()["id"]
    assert edited.json()["properties"]["name"] == "B"
    not_unique = await hub.client.patch(
        "/_sandbox/companies/A", params={"idProperty": "name"}, json={"properties": {"name": "C"}}
    )
    assert refused(not_unique)["message"].startswith("Unable to perform update by non-unique")


# -- sizes -----------------------------------------------------------------------------------


async def test_batch_read_with_history_takes_at_most_50_inputs(hub: RunningSandbox) -> None:
    def read(count: int) -> dict[str, Any]:
        return {"inputs": [{"id": str(1000 + n)} for n in range(count)], "properties": ["name"],
                "propertiesWithHistory": ["name"]}  # fmt: skip

    assert (await hub.client.post(f"{V3}/batch/read", json=read(50))).status_code == 207
    body = refused(await hub.client.post(f"{V3}/batch/read", json=read(51)))
    assert "at most 50" in body["message"]
    plain = {**read(100), "propertiesWithHistory": []}
    assert (await hub.client.post(f"{V3}/batch/read", json=plain)).status_code == 207


def filters(groups: int, each: int) -> dict[str, Any]:
    one = {"propertyName": "name", "operator": "HAS_PROPERTY"}
    return {"filterGroups": [{"filters": [one] * each} for _ in range(groups)], "limit": 10}


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (filters(3, 6), True),  # 18 filters
        (filters(4, 5), False),  # 20 filters, each group within its 6
        (filters(1, 7), False),
        (filters(6, 1), False),
        ({"limit": 200}, True),
        ({"limit": 1}, True),
        ({"limit": 0}, False),  # no endless paging with an empty page
        ({"limit": 201}, False),
        ({"limit": -5}, False),
        ({"after": "-1"}, False),
    ],
)
async def test_search_limits(hub: RunningSandbox, body: dict[str, Any], ok: bool) -> None:
    answer = await hub.client.post(f"{V3}/search", json=body)
    if ok:
        assert answer.status_code == 200, answer.text
    else:
        refused(answer)


async def test_list_caps_limit_at_100_and_50_with_history(hub: RunningSandbox) -> None:
    inputs = [{"properties": {"name": f"C{n}"}} for n in range(100)]
    for _ in range(2):
        assert (await hub.client.post(f"{V3}/batch/create", json={"inputs": inputs})).is_success
    page = await hub.client.get(V3, params={"limit": "500"})
    assert page.status_code == 200
    assert len(page.json()["results"]) == 100  # capped without complaint, as HubSpot does
    link = page.json()["paging"]["next"]["link"]
    assert link.startswith(f"https://api.hubapi.sandbox{V3}?")  # absolute, like HubSpot's
    following = await hub.client.get(link)
    assert following.json()["results"][0]["id"] == page.json()["paging"]["next"]["after"]
    with_history = {"limit": "51", "propertiesWithHistory": "name"}
    assert "50" in refused(await hub.client.get(V3, params=with_history))["message"]
    fifty = await hub.client.get(V3, params={**with_history, "limit": "50"})
    assert len(fifty.json()["results"]) == 50


# -- malformed bodies: 400, never 500 ------------------------------------------------------


NEW_PROPERTY = {
    "name": "p",
    "label": "P",
    "type": "string",
    "fieldType": "text",
    "groupName": "warp",
}
MALFORMED: list[tuple[str, str, Any]] = [
    ("POST", V3, []),
    ("POST", V3, {"properties": []}),
    ("POST", V3, {"properties": "name=x"}),
    ("POST", f"{V3}/batch/create", {"inputs": {}}),
    ("POST", f"{V3}/batch/create", {"inputs": [1, 2]}),
    ("POST", f"{V3}/batch/create", {"inputs": [{"properties": [1]}]}),
    ("POST", f"{V3}/batch/read", []),
    ("POST", f"{V3}/batch/read", {"inputs": [{"id": {}}], "properties": []}),
    ("POST", f"{V3}/batch/read", {"inputs": [], "properties": "name"}),
    ("POST", f"{V3}/batch/read", {"inputs": [], "properties": [1]}),
    ("POST", f"{V3}/batch/read", {"inputs": [], "idProperty": 5}),
    ("POST", f"{V3}/batch/read", {"inputs": [], "archived": "yes"}),
    ("POST", f"{V3}/batch/read", {"inputs": [7]}),
    ("POST", f"{V3}/batch/update", {"inputs": [{"id": None, "properties": {}}]}),
    ("POST", f"{V3}/batch/update", {"inputs": [{"id": "1", "properties": {}, "idProperty": 3}]}),
    ("POST", f"{V3}/batch/upsert", {"inputs": [{"id": ["x"], "idProperty": "warp_ban"}]}),
    ("POST", f"{V3}/batch/upsert", {"inputs": ["x"]}),
    ("POST", f"{V3}/batch/archive", {"inputs": [{"id": 1.5}]}),
    ("POST", f"{V3}/batch/archive", {"inputs": [None]}),
    ("POST", f"{V3}/search", []),
    ("POST", f"{V3}/search", {"limit": "ten"}),
    ("POST", f"{V3}/search", {"limit": True}),
    ("POST", f"{V3}/search", {"after": {}}),
    ("POST", f"{V3}/search", {"filterGroups": {}}),
    ("POST", f"{V3}/search", {"filterGroups": [{"filters": {}}]}),
    ("POST", f"{V3}/search", {"filterGroups": [{"filters": [1]}]}),
    (
        "POST",
        f"{V3}/search",
        {"filterGroups": [{"filters": [{"propertyName": "name", "operator": "IN", "values": 5}]}]},
    ),
    ("POST", f"{V3}/search", {"sorts": "name"}),
    ("POST", f"{V3}/search", {"sorts": [5]}),
    ("POST", f"{V3}/search", {"properties": "name"}),
    ("POST", f"{V3}/search", {"query": 7}),
    ("POST", f"{V3}/merge", {"primaryObjectId": [], "objectIdToMerge": "1"}),
    ("POST", f"{V3}/merge", "1"),
    ("PATCH", f"{V3}/1", {"properties": 3}),
    ("POST", PROPERTIES, {**NEW_PROPERTY, "displayOrder": "first"}),
    ("POST", PROPERTIES, {**NEW_PROPERTY, "hasUniqueValue": "yes"}),
    ("POST", PROPERTIES, []),
    ("POST", f"{PROPERTIES}/groups", {"name": "g", "label": "G", "displayOrder": []}),
    ("PATCH", f"{PROPERTIES}/groups/warp", {"displayOrder": "x"}),
    ("PATCH", f"{PROPERTIES}/warp_ban", {"hidden": "no"}),
    ("POST", f"{PROPERTIES}/batch/create", {"inputs": [1]}),
    ("POST", f"{PROPERTIES}/batch/read", {"inputs": [{"name": []}]}),
]


# Each found accepted by schemathesis's negative mode on HubSpot's documents (issue 20).
WRONGLY_TYPED: list[tuple[str, str, Any]] = [
    ("POST", f"{V3}/batch/archive", {"inputs": [{"id": 0}]}),
    ("POST", f"{DATED}/batch/archive", {"inputs": [{"id": 1001}]}),
    ("POST", f"{V3}/batch/update", {"inputs": [{"id": 0, "properties": {"name": "x"}}]}),
    ("POST", f"{V3}/batch/update", {"inputs": [{"id": "1001"}]}),
    ("POST", f"{V3}/batch/update",
     {"inputs": [{"id": "1", "properties": {}, "objectWriteTraceId": 5}]}),
    ("POST", f"{V3}/batch/upsert",
     {"inputs": [{"id": 7, "idProperty": "warp_ban", "properties": {}}]}),
    ("POST", f"{V3}/batch/upsert", {"inputs": [{"id": "ZT-7", "idProperty": "warp_ban"}]}),
    ("POST", f"{V3}/batch/create", {"inputs": [{"associations": []}]}),
    ("POST", f"{V3}/batch/create", {"inputs": [{"properties": {}, "objectWriteTraceId": []}]}),
    ("POST", f"{V3}/batch/read", {"inputs": [{"id": 1001}], "properties": []}),
    ("POST", f"{V3}/batch/read", {"inputs": [], "propertiesWithHistory": "name"}),
    ("POST", V3, {"associations": []}),
    ("POST", V3, {}),
    ("POST", f"{V3}/merge", {"primaryObjectId": 1001, "objectIdToMerge": 1002}),
    ("POST", f"{V3}/search", {"limit": "10"}),
    ("POST", f"{V3}/search", {"limit": 2147483648}),
    ("POST", f"{V3}/search", {"after": 10}),
    ("POST", f"{V3}/search", {"sorts": [{"propertyName": 5}]}),
    ("POST", f"{V3}/search", {"filterGroups": [{"filters": [{"propertyName": "name"}]}]}),
    ("POST", f"{V3}/search", {"filterGroups": [{}]}),
    ("POST", PROPERTIES, {**NEW_PROPERTY, "displayOrder": "2"}),
    ("POST", PROPERTIES, {**NEW_PROPERTY, "displayOrder": 2147483648}),
    ("POST", PROPERTIES, {**NEW_PROPERTY, "type": "text"}),
    ("POST", PROPERTIES, {**NEW_PROPERTY, "dataSensitivity": "public"}),
    ("POST", PROPERTIES, {**NEW_PROPERTY, "type": "enumeration", "fieldType": "select",
                          "options": [{"label": "A", "value": 1, "hidden": False}]}),
    ("POST", PROPERTIES, {**NEW_PROPERTY, "type": "enumeration", "fieldType": "select",
                          "options": "A;B"}),
    ("POST", f"{PROPERTIES}/batch/create", {"inputs": [{**NEW_PROPERTY, "type": None}]}),
    ("POST", f"{PROPERTIES}/batch/create",
     {"inputs": [{k: v for k, v in NEW_PROPERTY.items() if k != "type"}]}),
    ("POST", f"{PROPERTIES}/groups", {"name": "g", "label": "G", "displayOrder": 2147483648}),
    ("POST", f"{PROPERTIES}/groups", {"name": 5, "label": "G"}),
    ("PATCH", f"{PROPERTIES}/groups/warp", {"label": 5}),
    ("PATCH", f"{PROPERTIES}/warp_ban", {"options": {}}),
]  # fmt: skip
# Query parameters of the wrong type.
WRONG_QUERIES: list[tuple[str, str, dict[str, str], Any]] = [
    ("GET", V3, {"limit": "2147483648"}, None),
    ("GET", V3, {"limit": "ten"}, None),
    ("GET", V3, {"archived": "null"}, None),
    ("GET", f"{V3}/1001", {"archived": "yes"}, None),
    ("POST", f"{V3}/batch/read", {"archived": "null"}, {"inputs": []}),
    ("GET", PROPERTIES, {"dataSensitivity": "null"}, None),
    ("GET", PROPERTIES, {"archived": "1"}, None),
    ("GET", f"{PROPERTIES}/warp_ban", {"archived": "maybe"}, None),
]


@pytest.mark.parametrize(("method", "path", "body"), MALFORMED + WRONGLY_TYPED)
async def test_wrong_json_types_anywhere_are_a_400(
    hub: RunningSandbox, method: str, path: str, body: Any
) -> None:
    answer = await hub.client.request(method, path, json=body)
    refused(answer)
    assert not [c for c in hub.sandbox.companies.active() if c.value("name") == "x"]


@pytest.mark.parametrize(("method", "path", "params", "body"), WRONG_QUERIES)
async def test_wrongly_typed_query_parameters_are_a_400(
    hub: RunningSandbox, method: str, path: str, params: dict[str, str], body: Any
) -> None:
    made = await hub.client.post(V3, json={"properties": {"name": "A"}})
    assert made.json()["id"] == "1001"
    refused(await hub.client.request(method, path, params=params, json=body))


async def test_a_body_that_is_not_json_is_a_400(hub: RunningSandbox) -> None:
    answer = await hub.client.post(
        V3, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    refused(answer)


# -- search's own limit --------------------------------------------------------------------


async def test_search_is_exempt_from_the_ten_second_limit() -> None:
    config = SandboxConfig(rate_limit=RateLimit(2, 10.0), search_index_delay_seconds=0)
    async with running_sandbox(config) as hub:
        assert (await hub.client.get(V3)).status_code == 200
        assert (await hub.client.get(V3)).status_code == 200
        assert (await hub.client.get(V3)).status_code == 429
        searched = await hub.client.post(f"{V3}/search", json={"limit": 1})
        assert searched.status_code == 200  # its own 5/s, not the exhausted 2 / 10 s
        assert "X-HubSpot-RateLimit-Remaining" not in searched.headers
        for _ in range(4):
            await hub.client.post(f"{V3}/search", json={"limit": 1})
        over = await hub.client.post(f"{V3}/search", json={"limit": 1})
        assert over.status_code == 429
        assert over.json()["policyName"] == "SECONDLY"
        assert hub.sandbox.log.max_requests_in_window() == 3  # search is not in the window
