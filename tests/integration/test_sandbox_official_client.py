"""HubSpot's official Python client (`hubspot-api-client`) against the sandbox over HTTP.

The client's generated models deserialise every answer (required fields and enumerations are
checked as they are read), so a sandbox answer that HubSpot's own client cannot read fails
here. The client speaks the v3 paths; the 2026-03 answers are read with the same models.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.companies import ApiClient
from hubspot.crm.companies import models as company_models
from hubspot.crm.companies.exceptions import ApiException
from hubspot.crm.properties import models as property_models

from app.sandbox.config import SandboxConfig
from app.settings import RateLimit
from tests.sandbox_server import ServedSandbox, served_sandbox

TOKEN = "pat-official-client-test"
DATED = "/crm/objects/2026-03/companies"


@pytest.fixture(scope="module")
def served() -> Iterator[ServedSandbox]:
    config = SandboxConfig(
        access_token=TOKEN,
        rate_limit=RateLimit(100_000, 10.0),
        search_rate_limit=RateLimit(100_000, 1.0),
        search_index_delay_seconds=0,
    )
    with served_sandbox(config) as running:
        yield running


@pytest.fixture(scope="module")
def hubspot(served: ServedSandbox) -> HubSpot:
    client = HubSpot(access_token=TOKEN, host=served.url)
    client.crm.properties.groups_api.create(
        "companies", property_models.PropertyGroupCreate(name="warp", label="WARP")
    )
    for name, type_, field_type, unique in (
        ("warp_ban", "string", "text", True),
        ("warp_credit_limit", "number", "number", False),
        ("warp_since", "date", "date", False),
    ):
        created = client.crm.properties.core_api.create(
            "companies",
            property_models.PropertyCreate(
                name=name, label=name, type=type_, field_type=field_type, group_name="warp",
                has_unique_value=unique,
            ),
        )  # fmt: skip
        assert isinstance(created, property_models.ModelProperty)
        assert created.has_unique_value is unique
    return client


class _Answer:
    """What the official ApiClient.deserialize reads: the raw body as `data`."""

    def __init__(self, body: bytes) -> None:
        self.data = body


def read_as(model: str, body: bytes) -> Any:
    """Deserialise with the official client's generated model of that name."""
    return ApiClient().deserialize(_Answer(body), model)


def error_of(caught: pytest.ExceptionInfo[ApiException]) -> Any:
    error = read_as("Error", caught.value.body.encode())
    assert isinstance(error, company_models.Error)
    return error


def test_companies_round_trip_through_the_official_client(hubspot: HubSpot) -> None:
    basic = hubspot.crm.companies.basic_api
    made = basic.create(
        company_models.SimplePublicObjectInputForCreate(
            properties={"name": "Acme", "warp_ban": "ZT-OC-1", "warp_credit_limit": "1500.50"}
        )
    )
    assert isinstance(made, company_models.SimplePublicObject)
    assert made.properties["warp_credit_limit"] == "1500.5"
    read = basic.get_by_id(made.id, properties=["warp_ban", "domain"])
    assert read.properties["warp_ban"] == "ZT-OC-1"
    assert read.properties["domain"] is None  # requested and unset: null, as HubSpot answers
    changed = basic.update(
        made.id, company_models.SimplePublicObjectInput(properties={"warp_since": "2026-01-01"})
    )
    assert changed.properties["warp_since"] == "2026-01-01"
    history = basic.get_by_id(made.id, properties_with_history=["warp_credit_limit"])
    assert history.properties_with_history["warp_credit_limit"][0].value == "1500.5"


def test_batches_search_paging_and_merge_read_back(hubspot: HubSpot) -> None:
    companies = hubspot.crm.companies
    upserted = companies.batch_api.upsert(
        company_models.BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                company_models.SimplePublicObjectBatchInputUpsert(
                    id=f"ZT-OC-B{n}", id_property="warp_ban", properties={"name": f"B{n}"}
                )
                for n in range(5)
            ]
        )
    )
    assert isinstance(upserted, company_models.BatchResponseSimplePublicUpsertObject)
    assert all(result.new for result in upserted.results)
    ids = [result.id for result in upserted.results]
    read = companies.batch_api.read(
        company_models.BatchReadInputSimplePublicObjectId(
            inputs=[company_models.SimplePublicObjectId(id=i) for i in [*ids, "999999"]],
            properties=["name"],
            properties_with_history=[],
        )
    )
    assert isinstance(read, company_models.BatchResponseSimplePublicObjectWithErrors)
    assert read.num_errors == 1
    assert read.errors[0].category == "OBJECT_NOT_FOUND"
    page = companies.basic_api.get_page(limit=2, properties=["name"])
    assert page.paging.next.link.startswith("http://127.0.0.1:")
    found = companies.search_api.do_search(
        company_models.PublicObjectSearchRequest(
            filter_groups=[
                company_models.FilterGroup(
                    filters=[company_models.Filter(property_name="warp_ban", operator="EQ",
                                                   value="ZT-OC-B3")]
                )
            ],
            properties=["name", "warp_ban"],
            limit=10,
        )
    )  # fmt: skip
    assert found.total == 1
    assert found.results[0].properties["name"] == "B3"
    merged = companies.basic_api.merge(
        company_models.PublicMergeInput(primary_object_id=ids[0], object_id_to_merge=ids[1])
    )
    assert merged.id not in ids[:2]


def test_refusals_read_as_hubspots_error_model(hubspot: HubSpot) -> None:
    batch = hubspot.crm.companies.batch_api
    inputs = [
        company_models.SimplePublicObjectBatchInputForCreate(
            properties={"name": f"R{n}", "warp_credit_limit": " 5" if n == 3 else "5"},
            associations=[],
        )
        for n in range(10)
    ]
    with pytest.raises(ApiException) as caught:
        batch.create(company_models.BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))
    assert caught.value.status == 400
    error = error_of(caught)
    assert error.category == "VALIDATION_ERROR"
    assert error.message.startswith("Property values were not valid")
    with pytest.raises(ApiException) as caught:
        batch.upsert(
            company_models.BatchInputSimplePublicObjectBatchInputUpsert(
                inputs=[company_models.SimplePublicObjectBatchInputUpsert(
                    id="1", id_property="hs_object_id", properties={"name": "x"})]
            )
        )  # fmt: skip
    assert caught.value.status == 400
    assert "hs_object_id" in error_of(caught).message
    with pytest.raises(ApiException) as caught:
        hubspot.crm.companies.basic_api.get_by_id("424242")
    assert caught.value.status == 404
    assert error_of(caught).category == "OBJECT_NOT_FOUND"
    anonymous = HubSpot(host=hubspot.crm.companies.basic_api.api_client.configuration.host)
    with pytest.raises(ApiException) as caught:
        anonymous.crm.companies.basic_api.get_page()
    assert caught.value.status == 401
    assert error_of(caught).category == "INVALID_AUTHENTICATION"


def test_dated_answers_read_with_the_official_models(
    hubspot: HubSpot, served: ServedSandbox
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=served.url, headers=headers) as http:
        made = http.post(DATED, json={"properties": {"name": "Dated", "warp_ban": "ZT-OC-D"}})
        assert made.status_code == 201
        company = read_as("SimplePublicObject", made.content)
        upsert = http.post(
            f"{DATED}/batch/upsert",
            json={"inputs": [{"id": "ZT-OC-D", "idProperty": "warp_ban",
                              "properties": {"name": "Dated 2"}}]},
        )  # fmt: skip
        assert read_as("BatchResponseSimplePublicUpsertObject", upsert.content).results[0].id == (
            company.id
        )
        listed = http.get(DATED, params={"limit": 1, "properties": "name"})
        page = read_as(
            "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging", listed.content
        )
        assert page.paging.next.link.startswith(f"{served.url}{DATED}?")
        searched = http.post(f"{DATED}/search", json={"limit": 1, "properties": ["name"]})
        read_as("CollectionResponseWithTotalSimplePublicObjectForwardPaging", searched.content)
        props = http.get("/crm/properties/2026-03/companies")
        names = {p["name"] for p in json.loads(props.content)["results"]}
        assert {"warp_ban", "warp_credit_limit"} <= names
        empty = http.patch(f"{DATED}/{company.id}", json={"properties": {}})
        assert empty.status_code == 400
        assert read_as("Error", empty.content).message.startswith("No properties found to update")
