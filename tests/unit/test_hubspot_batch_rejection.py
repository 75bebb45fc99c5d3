"""A batch write HubSpot rejects whole (400 "Property values were not valid" for one bad input,
not a 207): the client splits the batch until the bad input stands alone, fails only it with
HubSpot's message, and writes the rest (respx)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from app.hubspot.errors import HubSpotAuthError, HubSpotValidationError
from app.hubspot.models import UpdateInput, UpsertInput
from tests.unit.test_hubspot_client_respx import (
    BASE,
    COMPANIES,
    RecordingLimiter,
    company,
    make_client,
)

REJECTION = {
    "status": "error",
    "message": 'Property values were not valid: [{"isValid":false,"message":"Not a number",'
    '"error":"INVALID_LONG","name":"warp_credit_limit"}]',
    "correlationId": "11111111-2222-3333-4444-555555555555",
    "category": "VALIDATION_ERROR",
}


class StrictHubSpot:
    """Answers a batch write like HubSpot: 400 for the whole request when any input holds the
    bad value, else 200 with one result per input (echoing its trace id)."""

    def __init__(self, bad_value: str) -> None:
        self.bad_value = bad_value
        self.sizes: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        self.sizes.append(len(inputs))
        if any(self.bad_value in item["properties"].values() for item in inputs):
            return httpx.Response(400, json=REJECTION)
        results = [
            {
                **company(str(1000 + int(item["id"].removeprefix("ZT-"))), **item["properties"]),
                "objectWriteTraceId": item["objectWriteTraceId"],
            }
            for item in inputs
        ]
        return httpx.Response(200, json={"status": "COMPLETE", "results": results})


@pytest.fixture
def hubspot() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.mark.parametrize("bad_position", [0, 3, 6])
async def test_a_whole_batch_rejection_fails_only_the_bad_input(
    hubspot: Any, bad_position: int
) -> None:
    strict = StrictHubSpot("lots")
    hubspot.post(f"{COMPANIES}/batch/upsert").mock(side_effect=strict)
    inputs = [
        UpsertInput(f"ZT-{n}", {"warp_credit_limit": "lots" if n == bad_position else str(n)})
        for n in range(7)
    ]
    async with make_client(RecordingLimiter()) as client:
        result = await client.batch_upsert_companies(inputs)

    assert [o.key for o in result.outcomes] == [f"ZT-{n}" for n in range(7)]
    for n, outcome in enumerate(result.outcomes):
        if n == bad_position:
            assert isinstance(outcome.error, HubSpotValidationError)
            assert "Property values were not valid" in outcome.error.message
            assert outcome.company is None
        else:
            assert outcome.error is None, outcome.error
            assert outcome.company is not None
            assert outcome.company.properties["warp_credit_limit"] == str(n)
    assert strict.sizes[0] == 7
    assert len(strict.sizes) <= 1 + 2 * 3, "split in halves: a few requests, not one per input"


async def test_a_single_input_rejected_gets_the_error_as_its_outcome(hubspot: Any) -> None:
    hubspot.post(f"{COMPANIES}/batch/update").mock(return_value=httpx.Response(400, json=REJECTION))
    async with make_client(RecordingLimiter()) as client:
        result = await client.batch_update_companies([UpdateInput("7", {"warp_credit_limit": "x"})])

    [outcome] = result.outcomes
    assert isinstance(outcome.error, HubSpotValidationError)
    assert outcome.error.correlation_id == REJECTION["correlationId"]


async def test_a_rejection_that_is_not_about_an_input_is_not_split(hubspot: Any) -> None:
    route = hubspot.post(f"{COMPANIES}/batch/update").mock(
        return_value=httpx.Response(
            401,
            json={"status": "error", "message": "expired", "category": "INVALID_AUTHENTICATION"},
        )
    )
    async with make_client(RecordingLimiter()) as client:
        with pytest.raises(HubSpotAuthError):
            await client.batch_update_companies(
                [UpdateInput(str(n), {"name": "x"}) for n in range(4)]
            )
    assert route.call_count == 1


async def test_an_unknown_property_is_not_split_either(hubspot: Any) -> None:
    body = {
        **REJECTION,
        "category": "PROPERTY_DOESNT_EXIST",
        "message": "Property x does not exist",
    }
    route = hubspot.post(f"{COMPANIES}/batch/update").mock(
        return_value=httpx.Response(400, json=body)
    )
    async with make_client(RecordingLimiter()) as client:
        with pytest.raises(HubSpotValidationError):
            await client.batch_update_companies([UpdateInput(str(n), {"x": "1"}) for n in range(4)])
    assert route.call_count == 1
