"""The HubSpot client against mocked HubSpot answers (respx): parsing, errors, retries, secrecy."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import pytest
import respx

from app.hubspot.client import HubSpotClient
from app.hubspot.errors import (
    HubSpotAuthError,
    HubSpotConflictError,
    HubSpotDailyLimitError,
    HubSpotError,
    HubSpotNotFoundError,
    HubSpotPermanentError,
    HubSpotRateLimitError,
    HubSpotRetryableError,
    HubSpotTransportError,
    HubSpotUnavailableError,
    HubSpotValidationError,
)
from app.hubspot.models import UpdateInput, UpsertInput
from app.hubspot.ratelimit import DAILY_PAUSE_REASON, Grant, LocalRateLimiter, RateLimitHeaders
from app.settings import RateLimit, Secret

BASE = "https://api.hubapi.test"
TOKEN = "pat-na1-not-a-real-token-0000"
COMPANIES = "/crm/v3/objects/companies"


class RecordingLimiter:
    """A limiter that lets everything through and remembers what the client told it."""

    def __init__(self, bucket: str = "hubspot") -> None:
        self.bucket = bucket
        self.acquired = 0
        self.settled = 0
        self.observed: list[RateLimitHeaders] = []
        self.pauses: list[tuple[float, str]] = []

    async def acquire(self) -> Grant:
        self.acquired += 1
        return Grant()

    async def settle(self, grant: Grant) -> None:
        self.settled += 1

    async def observe(self, headers: RateLimitHeaders) -> None:
        self.observed.append(headers)

    async def pause(self, seconds: float, reason: str) -> None:
        self.pauses.append((seconds, reason))


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def search_limiter() -> RecordingLimiter:
    return RecordingLimiter("hubspot_search")


def make_client(
    limiter: RecordingLimiter, search_limiter: RecordingLimiter | None = None, **kwargs: Any
) -> HubSpotClient:
    return HubSpotClient(
        base_url=BASE,
        access_token=Secret(TOKEN),
        limiter=limiter,
        search_limiter=search_limiter,
        **{"max_retries": 0, "api_version": "v3", **kwargs},
    )


@pytest.fixture
async def client(limiter: RecordingLimiter, search_limiter: RecordingLimiter) -> Any:
    async with make_client(limiter, search_limiter) as c:
        yield c


@pytest.fixture
def hubspot() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def company(cid: str, **props: str) -> dict[str, Any]:
    return {
        "id": cid,
        "properties": {"hs_object_id": cid, **props},
        "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-02T00:00:00Z",
        "archived": False,
    }


def batch(results: list[dict[str, Any]], errors: list[dict[str, Any]] | None = None) -> Any:
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": "2026-01-01T00:00:00Z",
        "completedAt": "2026-01-01T00:00:01Z",
    }
    if errors:
        body["errors"] = errors
        body["numErrors"] = len(errors)
    return httpx.Response(207 if errors else 200, json=body)


def item_error(category: str, message: str, **context: list[str]) -> dict[str, Any]:
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": [],
        "links": {},
    }


# -- requests and parsing -----------------------------------------------------------------


async def test_get_company_sends_bearer_and_parses_strings_and_history(
    client: HubSpotClient, hubspot: Any, limiter: RecordingLimiter
) -> None:
    body = company("101", name="Acme", warp_credit_limit="5000")
    body["propertiesWithHistory"] = {
        "name": [{"value": "Acme", "timestamp": "2026-01-02T00:00:00Z", "sourceType": "CRM_UI"}]
    }
    route = hubspot.get(f"{COMPANIES}/101").mock(
        return_value=httpx.Response(
            200,
            json=body,
            headers={
                "X-HubSpot-RateLimit-Max": "100",
                "X-HubSpot-RateLimit-Remaining": "97",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            },
        )
    )
    got = await client.get_company("101", ["name", "warp_credit_limit"], ["name"])
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.url.params["properties"] == "name,warp_credit_limit"
    assert request.url.params["propertiesWithHistory"] == "name"
    assert got.id == "101"
    assert got.properties["warp_credit_limit"] == "5000"
    assert got.properties_with_history["name"][0].source_type == "CRM_UI"
    assert limiter.acquired == 1
    assert limiter.observed == [RateLimitHeaders(max=100, remaining=97, interval_seconds=10.0)]


async def test_archive_company_accepts_204(client: HubSpotClient, hubspot: Any) -> None:
    route = hubspot.delete(f"{COMPANIES}/7").mock(return_value=httpx.Response(204))
    await client.archive_company("7")
    assert route.called


async def test_iter_companies_follows_the_cursor_over_every_page(
    client: HubSpotClient, hubspot: Any
) -> None:
    pages = {
        None: {"results": [company("1"), company("2")], "paging": {"next": {"after": "2"}}},
        "2": {"results": [company("3")], "paging": {"next": {"after": "3", "link": "x"}}},
        "3": {"results": [company("4")]},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.params["limit"] == "100"
        return httpx.Response(200, json=pages[request.url.params.get("after")])

    route = hubspot.get(COMPANIES).mock(side_effect=answer)
    ids = [c.id async for c in client.iter_companies(["name"])]
    assert ids == ["1", "2", "3", "4"]
    assert route.call_count == 3


async def test_search_uses_its_own_limiter_and_returns_the_cursor(
    client: HubSpotClient,
    hubspot: Any,
    limiter: RecordingLimiter,
    search_limiter: RecordingLimiter,
) -> None:
    route = hubspot.post(f"{COMPANIES}/search").mock(
        return_value=httpx.Response(
            200, json={"total": 3, "results": [company("9")], "paging": {"next": {"after": "9"}}}
        )
    )
    filters = [{"filters": [{"propertyName": "warp_ban", "operator": "HAS_PROPERTY"}]}]
    page = await client.search_companies(filters, ["warp_ban"], limit=1)
    assert [c.id for c in page.companies] == ["9"]
    assert (page.total, page.after) == (3, "9")
    assert json.loads(route.calls.last.request.content)["filterGroups"] == filters
    assert (search_limiter.acquired, limiter.acquired) == (1, 0)
    with pytest.raises(ValueError, match=r"1\.\.200"):
        await client.search_companies(filters, ["name"], limit=201)


# -- 207 partial success ------------------------------------------------------------------


async def test_upsert_207_maps_results_and_errors_to_their_inputs(
    client: HubSpotClient, hubspot: Any
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        assert all(i["idProperty"] == "warp_ban" for i in inputs)
        assert inputs[0]["properties"]["warp_ban"] == "ZT-1"
        trace = {i["id"]: i["objectWriteTraceId"] for i in inputs}
        assert len(set(trace.values())) == 4
        # Out of order; one matched by trace id only, one by its warp_ban value only.
        created = {**company("11", warp_ban="ZT-1"), "new": True}
        updated = {**company("12"), "new": False, "objectWriteTraceId": trace["ZT-2"]}
        return batch(
            [updated, created],
            [
                item_error("VALIDATION_ERROR", "bad number", objectWriteTraceId=[trace["ZT-3"]]),
                item_error("CONFLICT", "already taken", warp_ban=["ZT-4"]),
            ],
        )

    hubspot.post(f"{COMPANIES}/batch/upsert").mock(side_effect=answer)
    result = await client.batch_upsert_companies(
        [UpsertInput(f"ZT-{n}", {"name": f"Co {n}"}) for n in range(1, 5)]
    )
    assert [o.key for o in result] == ["ZT-1", "ZT-2", "ZT-3", "ZT-4"]
    one, two, three, four = result.outcomes
    assert one.company is not None
    assert (one.company.id, one.company.new) == ("11", True)
    assert two.company is not None
    assert (two.company.id, two.company.new) == ("12", False)
    assert isinstance(three.error, HubSpotValidationError)
    assert three.error.message == "bad number"
    assert isinstance(four.error, HubSpotConflictError)
    assert [o.key for o in result.errors] == ["ZT-3", "ZT-4"]


async def test_batch_read_207_maps_not_found_ids(client: HubSpotClient, hubspot: Any) -> None:
    route = hubspot.post(f"{COMPANIES}/batch/read").mock(
        return_value=batch(
            [company("3", name="C"), company("1", name="A")],
            [item_error("OBJECT_NOT_FOUND", "Could not get some objects", ids=["2", "4"])],
        )
    )
    result = await client.batch_read_companies(["1", "2", "3", "4", "1"], ["name"])
    sent = json.loads(route.calls.last.request.content)
    assert sent["inputs"] == [{"id": "1"}, {"id": "2"}, {"id": "3"}, {"id": "4"}]
    assert [o.key for o in result] == ["1", "2", "3", "4", "1"]
    assert [o.company.properties["name"] for o in result if o.company] == ["A", "C", "A"]
    assert all(isinstance(o.error, HubSpotNotFoundError) for o in result.errors)
    assert [o.key for o in result.errors] == ["2", "4"]


async def test_batch_read_by_unique_property_and_merged_ids(
    client: HubSpotClient, hubspot: Any
) -> None:
    route = hubspot.post(f"{COMPANIES}/batch/read").mock(
        return_value=batch([company("50", warp_ban="ZT-9")])
    )
    result = await client.batch_read_companies(["ZT-9"], ["name"], id_property="warp_ban")
    sent = json.loads(route.calls.last.request.content)
    assert sent["idProperty"] == "warp_ban"
    assert "warp_ban" in sent["properties"]
    assert result.outcomes[0].company is not None
    assert result.outcomes[0].company.id == "50"

    # A merged-away id answers under the survivor's id.
    hubspot.post(f"{COMPANIES}/batch/read").mock(
        return_value=batch([company("77", hs_merged_object_ids="5;6"), company("8")])
    )
    result = await client.batch_read_companies(["6", "8"], ["name"])
    assert [o.company.id for o in result if o.company] == ["77", "8"]


async def test_batch_update_207_and_an_input_hubspot_left_out(
    client: HubSpotClient, hubspot: Any
) -> None:
    hubspot.post(f"{COMPANIES}/batch/update").mock(
        return_value=batch(
            [company("1", name="A")],
            [item_error("VALIDATION_ERROR", "warp_status is read-only", ids=["2"])],
        )
    )
    result = await client.batch_update_companies(
        [UpdateInput("1", {"name": "A"}), UpdateInput("2", {"x": "y"}), UpdateInput("3", {})]
    )
    assert result.outcomes[0].ok
    assert isinstance(result.outcomes[1].error, HubSpotValidationError)
    missing = result.outcomes[2].error
    assert isinstance(missing, HubSpotRetryableError)
    assert missing.category == "NO_RESULT"


async def test_more_than_100_inputs_are_sent_in_chunks_of_100(
    client: HubSpotClient, hubspot: Any
) -> None:
    sizes: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        sizes.append(len(inputs))
        results = [
            {**company(f"id-{i['id']}", warp_ban=i["id"]), "new": True} for i in reversed(inputs)
        ]
        return batch(results)

    hubspot.post(f"{COMPANIES}/batch/upsert").mock(side_effect=answer)
    inputs = [UpsertInput(f"ZT-{n}", {"name": str(n)}) for n in range(250)]
    result = await client.batch_upsert_companies(inputs)
    assert sizes == [100, 100, 50]
    assert len(result) == 250
    assert all(o.company is not None and o.company.id == f"id-{o.key}" for o in result)


async def test_duplicate_write_inputs_are_refused_before_sending(
    client: HubSpotClient, hubspot: Any
) -> None:
    route = hubspot.post(f"{COMPANIES}/batch/upsert")
    with pytest.raises(ValueError, match="ZT-1"):
        await client.batch_upsert_companies([UpsertInput("ZT-1", {}), UpsertInput("ZT-1", {})])
    assert not route.called


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"category": "VALIDATION_ERROR", "message": "bad"}, HubSpotValidationError),
        (401, {"category": "INVALID_AUTHENTICATION", "message": "expired"}, HubSpotAuthError),
        (403, {"category": "MISSING_SCOPES", "message": "scope"}, HubSpotAuthError),
        (404, {"category": "OBJECT_NOT_FOUND", "message": "gone"}, HubSpotNotFoundError),
        (409, {"category": "CONFLICT", "message": "exists"}, HubSpotConflictError),
        (423, {"message": "locked"}, HubSpotUnavailableError),
        (477, {"message": "migrating"}, HubSpotUnavailableError),
        (500, None, HubSpotUnavailableError),
        (502, None, HubSpotUnavailableError),
        (503, None, HubSpotUnavailableError),
        (504, None, HubSpotUnavailableError),
        (520, None, HubSpotUnavailableError),
        (429, {"policyName": "TEN_SECONDLY_ROLLING", "message": "m"}, HubSpotRateLimitError),
        (429, {"policyName": "SECONDLY", "message": "m"}, HubSpotRateLimitError),
        (429, {"policyName": "DAILY", "message": "m"}, HubSpotDailyLimitError),
    ],
)
async def test_each_answer_raises_its_typed_error(
    client: HubSpotClient,
    hubspot: Any,
    status: int,
    body: dict[str, str] | None,
    expected: type[HubSpotError],
) -> None:
    hubspot.get(f"{COMPANIES}/1").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(expected) as caught:
        await client.get_company("1", ["name"])
    assert caught.value.status == status
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)


async def test_timeouts_and_connection_failures_are_retryable_transport_errors(
    client: HubSpotClient, hubspot: Any
) -> None:
    hubspot.get(f"{COMPANIES}/1").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(HubSpotTransportError, match="no answer in time") as caught:
        await client.get_company("1", ["name"])
    assert caught.value.retryable
    hubspot.get(f"{COMPANIES}/2").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(HubSpotTransportError, match="connection failed"):
        await client.get_company("2", ["name"])


async def test_429_pauses_the_bucket_for_retry_after(
    client: HubSpotClient, hubspot: Any, limiter: RecordingLimiter
) -> None:
    hubspot.get(f"{COMPANIES}/1").mock(
        return_value=httpx.Response(
            429,
            json={"policyName": "TEN_SECONDLY_ROLLING", "message": "slow down"},
            headers={"Retry-After": "4"},
        )
    )
    with pytest.raises(HubSpotRateLimitError) as caught:
        await client.get_company("1", ["name"])
    assert caught.value.retry_after == 4.0
    assert [seconds for seconds, _ in limiter.pauses] == [4.0]


async def test_daily_limit_pauses_general_and_search_buckets(
    client: HubSpotClient,
    hubspot: Any,
    limiter: RecordingLimiter,
    search_limiter: RecordingLimiter,
) -> None:
    hubspot.post(f"{COMPANIES}/search").mock(
        return_value=httpx.Response(429, json={"policyName": "DAILY", "message": "daily"})
    )
    with pytest.raises(HubSpotDailyLimitError) as caught:
        await client.search_companies([], ["name"])
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0
    assert len(limiter.pauses) == 1
    assert len(search_limiter.pauses) == 1


async def test_retry_after_is_honoured_before_retrying(
    limiter: RecordingLimiter, hubspot: Any
) -> None:
    route = hubspot.get(f"{COMPANIES}/1").mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": "0.3"}),
            httpx.Response(200, json=company("1", name="A")),
        ]
    )
    async with make_client(limiter, max_retries=2) as c:
        started = time.monotonic()
        got = await c.get_company("1", ["name"])
    assert got.properties["name"] == "A"
    assert route.call_count == 2
    assert time.monotonic() - started >= 0.3
    assert limiter.acquired == 2


async def test_waits_longer_than_allowed_and_permanent_errors_are_not_retried(
    limiter: RecordingLimiter, hubspot: Any
) -> None:
    route = hubspot.get(f"{COMPANIES}/1").mock(
        return_value=httpx.Response(503, headers={"Retry-After": "120"})
    )
    async with make_client(limiter, max_retries=3, max_retry_wait=30) as c:
        with pytest.raises(HubSpotUnavailableError):
            await c.get_company("1", ["name"])
        assert route.call_count == 1
        bad = hubspot.get(f"{COMPANIES}/2").mock(
            return_value=httpx.Response(400, json={"message": "bad"})
        )
        with pytest.raises(HubSpotPermanentError):
            await c.get_company("2", ["name"])
        assert bad.call_count == 1


# -- secrecy --------------------------------------------------------------------------------


async def test_the_token_never_reaches_errors_reprs_or_logs(
    limiter: RecordingLimiter, hubspot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Even if HubSpot echoed the token back, it would be scrubbed.
    hubspot.get(f"{COMPANIES}/1").mock(
        return_value=httpx.Response(
            401, json={"message": f"token {TOKEN} is expired", "correlationId": "c-1"}
        )
    )
    hubspot.get(f"{COMPANIES}/2").mock(side_effect=httpx.ConnectError("refused"))
    async with make_client(limiter, max_retries=1) as c:
        assert TOKEN not in repr(c)
        errors: list[HubSpotError] = []
        for cid in ("1", "2"):
            with pytest.raises(HubSpotError) as caught:
                await c.get_company(cid, ["name"])
            errors.append(caught.value)
    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        assert TOKEN not in str(error.__cause__ or "")
    assert "c-1" in str(errors[0])
    assert caplog.records, "the client logs its calls"
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in str(record.__dict__)


async def test_a_daily_pause_fails_fast_without_calling_hubspot(hubspot: Any) -> None:
    limiter = LocalRateLimiter(RateLimit(100, 10.0))
    await limiter.pause(7200, DAILY_PAUSE_REASON)
    route = hubspot.get(f"{COMPANIES}/1").mock(return_value=httpx.Response(200, json=company("1")))
    async with HubSpotClient(
        base_url=BASE, access_token=Secret(TOKEN), limiter=limiter, api_version="v3"
    ) as c:
        with pytest.raises(HubSpotDailyLimitError) as caught:
            await c.get_company("1", ["name"])
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 7000
    assert not route.called
