"""`POST /_sandbox/seed` makes many companies from a compact spec (a benchmark's million in
seconds); they answer every read as companies made one by one do, and change like them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.sandbox.config import SandboxConfig
from app.sandbox.testing import RunningSandbox, running_sandbox
from tests.integration.test_sandbox_companies import V3, WARP_PROPERTIES

SPEC = {
    "count": 250,
    "properties": {
        "name": "Bench Customer {n}",
        "warp_ban": "ZT-{n+700000000}",
        "warp_credit_limit": "{n+1000}",
        "warp_status": "ACTIVE",
        "domain": "bench{n}.example",
    },
    "overrides": {"7": {"warp_status": "SUSPENDED"}, "9": {"domain": ""}},
}


@pytest.fixture
async def hub() -> AsyncIterator[RunningSandbox]:
    """A sandbox with hubsync's properties (warp_ban unique), its search index current."""
    async with running_sandbox(SandboxConfig(search_index_delay_seconds=0)) as running:
        for prop in WARP_PROPERTIES:
            created = await running.client.post(
                "/crm/v3/properties/companies", json={**prop, "groupName": "companyinformation"}
            )
            assert created.status_code == 201, created.text
        yield running


@pytest.fixture
async def seeded(hub: RunningSandbox) -> tuple[RunningSandbox, int]:
    answer = await hub.client.post("/_sandbox/seed", json=SPEC)
    assert answer.status_code == 201, answer.text
    assert answer.json()["count"] == 250
    return hub, int(answer.json()["first"])


async def test_seeded_companies_read_as_made_one_by_one(
    seeded: tuple[RunningSandbox, int],
) -> None:
    portal, first = seeded
    wanted = "name,warp_ban,warp_credit_limit,warp_status,domain"
    company = (await portal.client.get(f"{V3}/{first + 7}", params={"properties": wanted})).json()
    assert company["properties"]["name"] == "Bench Customer 7"
    assert company["properties"]["warp_ban"] == "ZT-700000007"
    assert company["properties"]["warp_credit_limit"] == "1007"
    assert company["properties"]["warp_status"] == "SUSPENDED"  # the override
    assert company["properties"]["domain"] == "bench7.example"
    cleared = (await portal.client.get(f"{V3}/{first + 9}", params={"properties": "domain"})).json()
    assert cleared["properties"].get("domain") is None
    history = await portal.client.get(
        f"{V3}/{first + 3}", params={"propertiesWithHistory": "warp_status"}
    )
    versions = history.json()["propertiesWithHistory"]["warp_status"]
    assert [v["value"] for v in versions] == ["ACTIVE"]
    assert versions[0]["sourceType"] == "CRM_UI"


async def test_seeded_companies_are_listed_searched_and_found_by_ban(
    seeded: tuple[RunningSandbox, int],
) -> None:
    portal, first = seeded
    listed = (await portal.client.get(V3, params={"limit": 100, "after": str(first + 200)})).json()
    assert [c["id"] for c in listed["results"]] == [str(first + n) for n in range(200, 250)]
    search = {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "hs_object_id", "operator": "LT", "value": str(first + 100)}
                ]
            }
        ],
        "sorts": [{"propertyName": "hs_object_id", "direction": "DESCENDING"}],
        "limit": 10,
        "after": "20",
        "properties": ["warp_ban"],
    }
    found = (await portal.client.post(f"{V3}/search", json=search)).json()
    assert found["total"] == 100
    assert [c["id"] for c in found["results"]] == [str(first + n) for n in range(79, 69, -1)]
    by_ban = await portal.client.get(f"{V3}/ZT-700000042", params={"idProperty": "warp_ban"})
    assert by_ban.json()["id"] == str(first + 42)
    by_name = {
        "filterGroups": [
            {"filters": [{"propertyName": "name", "operator": "EQ", "value": "Bench Customer 5"}]}
        ]
    }
    assert (await portal.client.post(f"{V3}/search", json=by_name)).json()["total"] == 1


async def test_a_seeded_company_changes_and_keeps_its_history(
    seeded: tuple[RunningSandbox, int],
) -> None:
    portal, first = seeded
    changed = await portal.client.patch(
        f"{V3}/{first + 3}", json={"properties": {"warp_status": "CLOSED"}}
    )
    assert changed.status_code == 200, changed.text
    history = await portal.client.get(
        f"{V3}/{first + 3}", params={"propertiesWithHistory": "warp_status,name"}
    )
    body = history.json()["propertiesWithHistory"]
    assert [v["value"] for v in body["warp_status"]] == ["CLOSED", "ACTIVE"]
    assert [v["value"] for v in body["name"]] == ["Bench Customer 3"]


async def test_a_taken_unique_value_refuses_the_whole_seed(hub: RunningSandbox) -> None:
    made = await hub.client.post(V3, json={"properties": {"warp_ban": "ZT-700000002"}})
    assert made.status_code == 201
    answer = await hub.client.post("/_sandbox/seed", json=SPEC)
    assert answer.status_code == 409
    assert hub.sandbox.companies.find("ZT-700000003", id_property="warp_ban") is None


@pytest.mark.parametrize(
    "spec",
    [
        {"count": -1},
        {"count": "ten"},
        {"count": 3_000_000},
        {"count": 2, "properties": {"name": 7}},
        {"count": 2, "properties": {"no_such_property": "x"}},
        {"count": 2, "properties": {"warp_credit_limit": "lots {n}"}},
        {"count": 2, "overrides": {"5": {"name": "x"}}},
        {"count": 2, "overrides": {"x": {"name": "x"}}},
    ],
)
async def test_a_bad_spec_is_refused_with_a_4xx_and_seeds_nothing(
    hub: RunningSandbox,
    spec: dict[str, object],
) -> None:
    answer = await hub.client.post("/_sandbox/seed", json=spec)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["status"] == "error"
    assert len(hub.sandbox.companies) == 0


async def test_a_seeded_company_holds_only_its_row_of_values() -> None:
    """The compact form (no per-company dict, the values in a row) is what lets the sandbox
    hold a million companies in about 0.7 GB."""
    async with running_sandbox() as running:
        await running.client.post(
            "/_sandbox/seed", json={"count": 1000, "properties": {"name": "Company {n}"}}
        )
        first = running.sandbox.config.first_company_id
        company = running.sandbox.companies.find(str(first + 499))
        assert company is not None
        assert not hasattr(company, "__dict__")  # slots: no per-company dict
        assert company.value("name") == "Company 499"
