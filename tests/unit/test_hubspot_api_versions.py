"""The client speaks HubSpot's dated 2026-03 paths and the legacy v3 ones, chosen by a setting."""

from __future__ import annotations

from typing import Any

import pytest
import respx

from app.hubspot.client import HubSpotClient
from app.hubspot.models import UpdateInput, UpsertInput
from app.hubspot.paths import ApiPaths, operation
from app.hubspot.ratelimit import LocalRateLimiter
from app.settings import RateLimit, Secret, Settings, SettingsError

BASE = "https://api.hubapi.test"
ROOTS = {
    "2026-03": ("/crm/objects/2026-03/companies", "/crm/properties/2026-03/companies"),
    "v3": ("/crm/v3/objects/companies", "/crm/v3/properties/companies"),
}
COMPANY = {
    "id": "7",
    "properties": {"name": "Acme"},
    "createdAt": "2026-01-01T00:00:00Z",
    "updatedAt": "2026-01-01T00:00:00Z",
    "archived": False,
}
BATCH = {"status": "COMPLETE", "results": [COMPANY], "startedAt": "x", "completedAt": "y"}


def test_the_default_is_the_dated_api_and_v3_can_be_chosen() -> None:
    assert Settings.from_mapping({}).hubspot_api_version == "2026-03"
    assert Settings.from_mapping({"HUBSPOT_API_VERSION": "v3"}).hubspot_api_version == "v3"
    with pytest.raises(SettingsError, match="HUBSPOT_API_VERSION"):
        Settings.from_mapping({"HUBSPOT_API_VERSION": "2024-01"})
    with pytest.raises(ValueError, match="unknown HubSpot API version"):
        ApiPaths("v4")


@pytest.mark.parametrize("version", ["2026-03", "v3"])
async def test_every_call_goes_to_the_chosen_versions_paths(version: str) -> None:
    objects, properties = ROOTS[version]
    limiter = LocalRateLimiter(RateLimit(1000, 1.0))
    with respx.mock(base_url=BASE, assert_all_called=True) as hubspot:
        routes: list[Any] = [
            hubspot.get(f"{objects}/7").respond(json=COMPANY),
            hubspot.get(objects).respond(json={"results": [COMPANY]}),
            hubspot.delete(f"{objects}/7").respond(204),
            hubspot.post(f"{objects}/search").respond(json={"total": 1, "results": [COMPANY]}),
            hubspot.post(f"{objects}/batch/read").respond(json=BATCH),
            hubspot.post(f"{objects}/batch/update").respond(json=BATCH),
            hubspot.post(f"{objects}/batch/upsert").respond(
                json={**BATCH, "results": [{**COMPANY, "new": True}]}
            ),
            hubspot.get(properties).respond(json={"results": []}),
            hubspot.post(properties).respond(201, json={"name": "p"}),
            hubspot.get(f"{properties}/p").respond(json={"name": "p"}),
            hubspot.patch(f"{properties}/p").respond(json={"name": "p"}),
            hubspot.get(f"{properties}/groups").respond(json={"results": []}),
            hubspot.post(f"{properties}/groups").respond(201, json={"name": "g"}),
        ]
        async with HubSpotClient(
            base_url=BASE, access_token=Secret("pat-x"), limiter=limiter, api_version=version
        ) as client:
            await client.get_company("7", ["name"])
            assert [c.id async for c in client.iter_companies(["name"])] == ["7"]
            await client.archive_company("7")
            await client.search_companies([], ["name"])
            await client.batch_read_companies(["7"], ["name"])
            await client.batch_update_companies([UpdateInput("7", {"name": "B"})])
            await client.batch_upsert_companies([UpsertInput("ZT-1", {"name": "B"})])
            await client.list_properties()
            await client.create_property({"name": "p"})
            await client.get_property("p")
            await client.update_property("p", {"label": "P"})
            await client.list_property_groups()
            await client.create_property_group("g", "G")
    assert all(route.call_count == 1 for route in routes)


@pytest.mark.parametrize("version", ["2026-03", "v3"])
def test_metric_operations_are_the_same_for_both_versions(version: str) -> None:
    paths = ApiPaths(version)
    assert operation("POST", paths.companies_batch("upsert")) == "batch_upsert"
    assert operation("POST", paths.companies_search) == "search"
    assert operation("GET", paths.companies) == "list_companies"
    assert operation("GET", paths.company("42")) == "get_company"
    assert operation("DELETE", paths.company("42")) == "archive_company"
    assert operation("GET", paths.company_property("warp_ban")) == "properties"
    assert operation("GET", "/crm/v4/somewhere") == "other"
