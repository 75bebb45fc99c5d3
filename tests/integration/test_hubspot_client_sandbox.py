"""The HubSpot client and the property bootstrap against the sandbox (in-process, lifespan run)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from app.hubspot.client import HubSpotClient
from app.hubspot.errors import (
    HubSpotAuthError,
    HubSpotNotFoundError,
    HubSpotUnavailableError,
    HubSpotValidationError,
)
from app.hubspot.models import UpdateInput, UpsertInput
from app.hubspot.properties import WARP_PROPERTIES, PropertySchemaError, ensure_properties
from app.hubspot.ratelimit import LocalRateLimiter
from app.sandbox.config import SandboxConfig
from app.sandbox.sandbox import Sandbox
from app.sandbox.testing import SANDBOX_BASE_URL, running_sandbox
from app.settings import RateLimit, Secret

TOKEN = "pat-sandbox-test-token-1234"
PROPS = ["name", "warp_ban", "warp_status", "warp_credit_limit", "warp_services_voice"]


@dataclass
class Portal:
    sandbox: Sandbox
    transport: httpx.AsyncBaseTransport

    def client(self, token: str = TOKEN, **kwargs: object) -> HubSpotClient:
        limit = kwargs.pop("limit", RateLimit(100, 10.0))
        assert isinstance(limit, RateLimit)
        return HubSpotClient(
            base_url=SANDBOX_BASE_URL,
            access_token=Secret(token),
            limiter=LocalRateLimiter(limit),
            search_limiter=LocalRateLimiter(RateLimit(5, 1.0), bucket="hubspot_search"),
            transport=self.transport,
            **{"max_retries": 0, **kwargs},  # type: ignore[arg-type]
        )


async def start(config: SandboxConfig) -> AsyncIterator[Portal]:
    async with running_sandbox(config) as running:
        yield Portal(running.sandbox, httpx.ASGITransport(app=running.app))


@pytest.fixture
async def portal() -> AsyncIterator[Portal]:
    # Search without the index's lag: these tests search right after writing.
    async for p in start(SandboxConfig(access_token=TOKEN, search_index_delay_seconds=0)):
        yield p


@pytest.fixture
async def client(portal: Portal) -> AsyncIterator[HubSpotClient]:
    async with portal.client() as c:
        await ensure_properties(c)
        yield c


def customer(n: int, **extra: str) -> UpsertInput:
    return UpsertInput(
        f"ZT-{n:09d}",
        {"name": f"Customer {n}", "warp_status": "ACTIVE", "warp_credit_limit": "100", **extra},
    )


# -- property bootstrap ---------------------------------------------------------------------


async def test_bootstrap_creates_the_group_and_properties_once(portal: Portal) -> None:
    async with portal.client() as c:
        first = await ensure_properties(c)
        assert first.group_created
        assert first.created == [spec.name for spec in WARP_PROPERTIES]
        second = await ensure_properties(c)
        assert not second.changed
        assert sorted(second.unchanged) == sorted(spec.name for spec in WARP_PROPERTIES)
        by_name = {p["name"]: p for p in await c.list_properties()}
    ban = by_name["warp_ban"]
    assert (ban["type"], ban["hasUniqueValue"], ban["groupName"]) == ("string", True, "warp")
    assert by_name["warp_credit_limit"]["type"] == "number"
    assert {o["value"] for o in by_name["warp_customer_type"]["options"]} == {
        "PREPAID",
        "POSTPAID",
        "RESELLER",
    }
    voice = by_name["warp_services_voice"]
    assert (voice["type"], voice["fieldType"]) == ("enumeration", "booleancheckbox")
    assert {o["value"] for o in voice["options"]} == {"true", "false"}


async def test_bootstrap_refuses_wrong_types_and_a_non_unique_ban(portal: Portal) -> None:
    async with portal.client() as c:
        await c.create_property_group("warp", "WARP")
        await c.create_property(
            {"name": "warp_status", "label": "s", "type": "number", "fieldType": "number",
             "groupName": "warp"}
        )  # fmt: skip
        await c.create_property(
            {"name": "warp_ban", "label": "b", "type": "string", "fieldType": "text",
             "groupName": "warp"}
        )  # fmt: skip
        with pytest.raises(PropertySchemaError) as caught:
            await ensure_properties(c)
    message = str(caught.value)
    assert "warp_status has type 'number'" in message
    assert "warp_ban exists without a unique value" in message


async def test_bootstrap_adds_missing_enumeration_options(portal: Portal) -> None:
    async with portal.client() as c:
        await c.create_property_group("warp", "WARP")
        await c.create_property(
            {"name": "warp_customer_type", "label": "t", "type": "enumeration",
             "fieldType": "select", "groupName": "warp",
             "options": [{"value": "PREPAID", "label": "Prepaid", "hidden": False}]}
        )  # fmt: skip
        report = await ensure_properties(c)
        current = await c.get_property("warp_customer_type")
    assert report.options_added == {"warp_customer_type": ["POSTPAID", "RESELLER"]}
    assert [o["value"] for o in current["options"]] == ["PREPAID", "POSTPAID", "RESELLER"]


# -- companies ------------------------------------------------------------------------------


async def test_upsert_creates_then_updates_by_ban(client: HubSpotClient) -> None:
    created = await client.batch_upsert_companies([customer(1), customer(2)])
    assert [o.company.new for o in created if o.company] == [True, True]
    again = await client.batch_upsert_companies([customer(2, warp_status="SUSPENDED"), customer(1)])
    assert [o.company.new for o in again if o.company] == [False, False]
    ids = {o.key: o.company.id for o in created if o.company}
    assert {o.key: o.company.id for o in again if o.company} == ids
    company = await client.get_company(ids["ZT-000000002"], PROPS, ["warp_status"])
    assert company.properties["warp_status"] == "SUSPENDED"
    assert [v.value for v in company.properties_with_history["warp_status"]][:2] == [
        "SUSPENDED",
        "ACTIVE",
    ]


async def test_upsert_of_250_with_one_bad_value_maps_the_error(client: HubSpotClient) -> None:
    inputs = [customer(n) for n in range(250)]
    inputs[137] = customer(137, warp_credit_limit="lots")
    result = await client.batch_upsert_companies(inputs)
    assert len(result) == 250
    assert [o.key for o in result.errors] == ["ZT-000000137"]
    error = result.errors[0].error
    assert isinstance(error, HubSpotValidationError)
    assert "warp_credit_limit" in error.message
    assert all(o.company is not None and o.company.new for o in result if o.key != "ZT-000000137")
    assert len({o.company.id for o in result if o.company}) == 249


@pytest.mark.parametrize("operation", ["upsert", "update"])
async def test_a_batch_with_one_bad_value_is_refused_whole_and_the_client_isolates_it(
    client: HubSpotClient, portal: Portal, operation: str
) -> None:
    """The sandbox answers 400 for the whole request, as HubSpot does, not 207; the client
    splits the batch until the bad input stands alone, so the other 99 are still written."""
    existing = await client.batch_upsert_companies([customer(n) for n in range(100)])
    inputs = [customer(n, warp_status="SUSPENDED") for n in range(100)]
    inputs[37] = customer(37, warp_status="SUSPENDED", warp_credit_limit="lots")
    ids = {o.key: o.company.id for o in existing if o.company}
    before = len(portal.sandbox.request_log)
    if operation == "upsert":
        result = await client.batch_upsert_companies(inputs)
        keys = [i.id_value for i in inputs]
    else:
        result = await client.batch_update_companies(
            [UpdateInput(ids[i.id_value], i.properties) for i in inputs]
        )
        keys = [ids[i.id_value] for i in inputs]
    writes = [r.status for r in portal.sandbox.request_log[before:]]
    assert writes[0] == 400  # the whole first batch refused, nothing of it written
    assert 207 not in writes
    assert [o.key for o in result.errors] == [keys[37]]
    error = result.errors[0].error
    assert isinstance(error, HubSpotValidationError)
    assert "Property values were not valid" in error.message
    assert "warp_credit_limit" in error.message
    statuses = {
        c.value("warp_ban"): c.value("warp_status") for c in portal.sandbox.companies.active()
    }
    assert statuses.pop("ZT-000000037") == "ACTIVE"
    assert set(statuses.values()) == {"SUSPENDED"}  # the other 99 written


async def test_batch_read_by_id_and_by_ban_with_a_missing_one(client: HubSpotClient) -> None:
    created = await client.batch_upsert_companies([customer(1), customer(2)])
    ids = [o.company.id for o in created if o.company]
    by_id = await client.batch_read_companies([ids[1], "999999", ids[0]], PROPS)
    assert [o.company.properties["warp_ban"] for o in by_id if o.company] == [
        "ZT-000000002",
        "ZT-000000001",
    ]
    assert isinstance(by_id.outcomes[1].error, HubSpotNotFoundError)
    by_ban = await client.batch_read_companies(
        ["ZT-000000001", "ZT-404"], PROPS, id_property="warp_ban"
    )
    assert by_ban.outcomes[0].company is not None
    assert by_ban.outcomes[0].company.id == ids[0]
    assert isinstance(by_ban.outcomes[1].error, HubSpotNotFoundError)


async def test_batch_update_and_archive(client: HubSpotClient) -> None:
    created = await client.batch_upsert_companies([customer(1), customer(2)])
    one, two = (o.company.id for o in created if o.company)
    result = await client.batch_update_companies(
        [
            UpdateInput(one, {"warp_status": "CLOSED"}),
            UpdateInput("999999", {"warp_status": "CLOSED"}),
            UpdateInput(two, {"warp_services_voice": "true"}),
        ]
    )
    assert result.outcomes[0].company is not None
    assert result.outcomes[0].company.properties["warp_status"] == "CLOSED"
    assert isinstance(result.outcomes[1].error, HubSpotNotFoundError)
    assert result.outcomes[2].company is not None
    await client.archive_company(two)
    with pytest.raises(HubSpotNotFoundError):
        await client.get_company(two, PROPS)


async def test_iter_companies_and_search(client: HubSpotClient) -> None:
    await client.batch_upsert_companies([customer(n) for n in range(230)])
    seen = [c.properties["warp_ban"] async for c in client.iter_companies(["warp_ban"])]
    assert len(seen) == 230
    assert len(set(seen)) == 230
    page = await client.search_companies(
        [{"filters": [{"propertyName": "warp_ban", "operator": "EQ", "value": "ZT-000000042"}]}],
        PROPS,
    )
    assert page.total == 1
    assert page.companies[0].properties["name"] == "Customer 42"
    assert page.after is None


# -- failures -------------------------------------------------------------------------------


async def test_a_wrong_token_is_an_auth_error_that_does_not_show_it(portal: Portal) -> None:
    async with portal.client(token="pat-wrong-token-5678") as c:
        with pytest.raises(HubSpotAuthError) as caught:
            await c.get_company("1", ["name"])
    assert caught.value.status == 401
    assert "pat-wrong-token-5678" not in str(caught.value)


async def test_injected_outages_are_retryable_and_retried(
    client: HubSpotClient, portal: Portal
) -> None:
    portal.sandbox.set_faults(error_rate=1.0, statuses=(503,))
    with pytest.raises(HubSpotUnavailableError):
        await client.batch_upsert_companies([customer(1)])
    portal.sandbox.set_faults(error_rate=1.0, statuses=(477,), retry_after_seconds=7)
    with pytest.raises(HubSpotUnavailableError) as caught:
        await client.batch_upsert_companies([customer(1)])
    assert caught.value.retry_after == 7.0
    # With a few retries the client gets through a flaky portal on its own.
    portal.sandbox.set_faults(error_rate=0.4, statuses=(502, 503, 504), seed=1)
    injected_before = portal.sandbox.faults.injected
    async with portal.client(max_retries=8, max_retry_wait=1.0) as patient:
        result = await patient.batch_upsert_companies([customer(n) for n in range(5)])
    assert [o.ok for o in result] == [True] * 5
    assert portal.sandbox.faults.injected > injected_before


async def test_the_limiter_keeps_the_sandbox_from_refusing(portal: Portal) -> None:
    async for small in start(SandboxConfig(rate_limit=RateLimit(8, 1.0))):
        async with small.client(limit=RateLimit(8, 1.0)) as c:
            await ensure_properties(c)
            for n in range(20):
                await c.batch_upsert_companies([customer(n)])
        stats = small.sandbox.stats()
        assert stats["rate_limited"] == 0
        # Bootstrap: list groups, create the group, list properties, create 8; then 20 upserts.
        assert stats["requests"] == 31
        assert stats["max_requests_in_window"] <= 8


async def test_a_history_read_of_120_ids_goes_in_requests_of_50(
    client: HubSpotClient, portal: Portal
) -> None:
    created = await client.batch_upsert_companies([customer(n) for n in range(120)])
    ids = [o.company.id for o in created if o.company]
    before = len(portal.sandbox.request_log)
    result = await client.batch_read_companies(
        ids, ["name"], properties_with_history=["warp_status"]
    )
    reads = [r for r in portal.sandbox.request_log[before:] if r.path.endswith("/batch/read")]
    assert [r.status for r in reads] == [200, 200, 200]  # 50 + 50 + 20, none refused
    assert all(o.company and o.company.properties_with_history["warp_status"] for o in result)
