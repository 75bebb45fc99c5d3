"""Sandbox rate limits, authentication, fault injection, statistics and reset."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from app.sandbox.config import SandboxConfig
from app.sandbox.faults import Faults
from app.sandbox.testing import running_sandbox
from app.settings import RateLimit

V3 = "/crm/v3/objects/companies"
SEARCH = f"{V3}/search"


def assert_rate_limit_body(body: dict[str, str], policy: str, window: str) -> None:
    assert set(body) == {
        "status", "message", "errorType", "correlationId", "policyName", "requestId"
    }  # fmt: skip
    uuid.UUID(body["requestId"])
    assert body["requestId"] != body["correlationId"]
    assert body["status"] == "error"
    assert body["message"] == f"You have reached your {window} limit."
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == policy
    uuid.UUID(body["correlationId"])


async def test_rolling_window_refuses_with_hubspots_429() -> None:
    async with running_sandbox(SandboxConfig(rate_limit=RateLimit(5, 1.0))) as hub:
        answers = [await hub.client.get(V3) for _ in range(5)]
        assert [r.status_code for r in answers] == [200] * 5
        assert [r.headers["X-HubSpot-RateLimit-Remaining"] for r in answers] == [
            "4", "3", "2", "1", "0",
        ]  # fmt: skip
        first = answers[0].headers
        assert first["X-HubSpot-RateLimit-Max"] == "5"
        # HubSpot's per-second view of the same limit: 5 in 1 s, used up by the five calls.
        assert first["X-HubSpot-RateLimit-Secondly"] == "5"
        assert [r.headers["X-HubSpot-RateLimit-Secondly-Remaining"] for r in answers] == [
            "4", "3", "2", "1", "0",
        ]  # fmt: skip
        assert first["X-HubSpot-RateLimit-Interval-Milliseconds"] == "1000"
        assert first["X-HubSpot-RateLimit-Daily"] == "250000"
        assert first["X-HubSpot-RateLimit-Daily-Remaining"] == "249999"
        refused = await hub.client.get(V3)
        assert refused.status_code == 429
        assert_rate_limit_body(refused.json(), "TEN_SECONDLY_ROLLING", "ten_secondly_rolling")
        assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        await asyncio.sleep(1.05)
        assert (await hub.client.get(V3)).status_code == 200
        stats = hub.sandbox.stats()
        assert stats["rate_limited"] == 1
        assert stats["rate_limited_by_policy"] == {"TEN_SECONDLY_ROLLING": 1}
        assert stats["requests"] == 7
        assert stats["max_requests_in_window"] == 6  # the refused one arrived inside the window
        assert hub.sandbox.log.max_requests_in_window() == 6
        assert [r.status for r in hub.sandbox.request_log] == [200] * 5 + [429, 200]


async def test_control_routes_are_not_counted() -> None:
    async with running_sandbox(SandboxConfig(rate_limit=RateLimit(2, 10.0))) as hub:
        for _ in range(5):
            assert (await hub.client.get("/_sandbox/stats")).status_code == 200
        assert (await hub.client.get(V3)).status_code == 200
        assert hub.sandbox.stats()["requests"] == 1


async def test_search_has_its_own_secondly_limit() -> None:
    config = SandboxConfig(search_rate_limit=RateLimit(2, 0.5))
    async with running_sandbox(config) as hub:
        assert [(await hub.client.post(SEARCH, json={})).status_code for _ in range(2)] == [200] * 2
        refused = await hub.client.post(SEARCH, json={})
        assert refused.status_code == 429
        assert_rate_limit_body(refused.json(), "SECONDLY", "secondly")
        assert not [h for h in refused.headers if h.lower().startswith("x-hubspot-ratelimit")]
        assert (await hub.client.get(V3)).status_code == 200  # other calls are unaffected
        await asyncio.sleep(0.55)
        assert (await hub.client.post(SEARCH, json={})).status_code == 200
        stats = hub.sandbox.stats()
        assert stats["searches"] == 4
        # The refused one arrived inside the window too; search is not in the general window.
        assert stats["max_searches_in_window"] == 3
        assert stats["max_requests_in_window"] == 1
        assert stats["search_rate_limit"] == {"requests": 2, "window_seconds": 0.5}


async def test_window_peaks_start_afresh_for_a_benchmarks_next_phase() -> None:
    async with running_sandbox() as hub:
        for _ in range(3):
            assert (await hub.client.post(SEARCH, json={})).status_code == 200
            assert (await hub.client.get(V3)).status_code == 200
        reset = await hub.client.post("/_sandbox/stats/peaks/reset")
        assert reset.status_code == 204
        assert (await hub.client.post(SEARCH, json={})).status_code == 200
        stats = (await hub.client.get("/_sandbox/stats")).json()
        assert (stats["max_searches_in_window"], stats["max_requests_in_window"]) == (1, 0)
        assert (stats["searches"], stats["requests"]) == (4, 7)


async def test_requests_read_back_with_arrival_and_answer_on_the_sandbox_clock() -> None:
    async with running_sandbox(SandboxConfig(rate_limit=RateLimit(1, 10.0))) as hub:
        first = (await hub.client.get("/_sandbox/requests")).json()
        assert first["requests"] == []
        assert (await hub.client.get(V3)).status_code == 200
        assert (await hub.client.get(V3)).status_code == 429  # refused ones are listed too
        assert (await hub.client.post(SEARCH, json={})).status_code == 200
        seen = (await hub.client.get("/_sandbox/requests", params={"since": first["now"]})).json()
        got = seen["requests"]
        assert [(r["method"], r["status"], r["search"]) for r in got] == [
            ("GET", 200, False), ("GET", 429, False), ("POST", 200, True),
        ]  # fmt: skip
        assert got[0]["path"] == V3
        assert first["now"] < got[0]["at"] <= got[0]["answered"] <= got[1]["at"] <= seen["now"]
        later = (await hub.client.get("/_sandbox/requests", params={"since": got[1]["at"]})).json()
        assert [r["search"] for r in later["requests"]] == [True]
        bad = await hub.client.get("/_sandbox/requests", params={"since": "yesterday"})
        assert bad.status_code == 400
        assert "since must be a number" in bad.json()["message"]


async def test_daily_limit() -> None:
    async with running_sandbox(SandboxConfig(daily_limit=2)) as hub:
        assert [(await hub.client.get(V3)).status_code for _ in range(2)] == [200, 200]
        refused = await hub.client.get(V3)
        assert refused.status_code == 429
        assert_rate_limit_body(refused.json(), "DAILY", "daily")
        assert refused.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


async def test_access_token_is_required_when_configured() -> None:
    async with running_sandbox(SandboxConfig(access_token="pat-test-token")) as hub:
        missing = await hub.client.get(V3, headers={"Authorization": ""})
        assert missing.status_code == 401
        assert missing.json()["category"] == "INVALID_AUTHENTICATION"
        wrong = await hub.client.get(V3, headers={"Authorization": "Bearer pat-other"})
        assert wrong.status_code == 401
        right = await hub.client.get(V3, headers={"Authorization": "Bearer pat-test-token"})
        assert right.status_code == 200


async def test_any_bearer_token_is_accepted_by_default_but_none_is_refused() -> None:
    async with running_sandbox() as hub:
        assert (await hub.client.get(V3, headers={"Authorization": "Bearer x"})).status_code == 200
        for refused in ("", "Bearer ", "Basic eDp5", "pat-no-scheme"):
            answer = await hub.client.get(V3, headers={"Authorization": refused})
            assert answer.status_code == 401, refused
            assert answer.json()["category"] == "INVALID_AUTHENTICATION"
        transport = httpx.ASGITransport(app=hub.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as anonymous:
            assert (await anonymous.get(V3)).status_code == 401
            assert (await anonymous.get("/_sandbox/stats")).status_code == 200


async def test_a_sandbox_started_open_takes_requests_without_a_token() -> None:
    async with running_sandbox(SandboxConfig(open_access=True)) as hub:
        transport = httpx.ASGITransport(app=hub.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as anonymous:
            assert (await anonymous.get(V3)).status_code == 200


@pytest.mark.parametrize(
    ("status", "category"), [(423, "LOCKED"), (477, "MIGRATION_IN_PROGRESS"), (502, "BAD_GATEWAY")]
)
async def test_injected_errors_look_like_hubspots(status: int, category: str) -> None:
    async with running_sandbox() as hub:
        hub.sandbox.set_faults(error_rate=1.0, statuses=[status])
        response = await hub.client.post(V3, json={"properties": {"name": "never"}})
        assert response.status_code == status
        assert response.json()["category"] == category
        if status == 477:
            assert response.headers["Retry-After"] == "1"
        hub.sandbox.set_faults(Faults())
        # The failed write was never applied.
        assert (await hub.client.get(V3)).json()["results"] == []
        assert hub.sandbox.stats()["faults_injected"] == 1


async def test_injected_429_has_the_rate_limit_body() -> None:
    async with running_sandbox() as hub:
        hub.sandbox.set_faults(error_rate=1.0, statuses=[429])
        response = await hub.client.get(V3)
        assert response.status_code == 429
        assert_rate_limit_body(response.json(), "TEN_SECONDLY_ROLLING", "ten_secondly_rolling")


async def test_seeded_faults_repeat_exactly() -> None:
    async with running_sandbox() as hub:
        runs = []
        for _ in range(2):
            put = await hub.client.put(
                "/_sandbox/faults", json={"error_rate": 0.3, "statuses": [500, 503], "seed": 7}
            )
            assert put.status_code == 200
            runs.append([(await hub.client.get(V3)).status_code for _ in range(40)])
        assert runs[0] == runs[1]
        failures = [s for s in runs[0] if s != 200]
        assert 3 <= len(failures) <= 25
        assert set(failures) <= {500, 503}


async def test_bad_fault_settings_are_refused() -> None:
    async with running_sandbox() as hub:
        response = await hub.client.put("/_sandbox/faults", json={"error_rate": 2})
        assert response.status_code == 400
        response = await hub.client.put("/_sandbox/faults", json={"explode": True})
        assert response.status_code == 400


async def test_latency_is_added() -> None:
    async with running_sandbox() as hub:
        hub.sandbox.set_faults(latency_ms=60)
        started = time.monotonic()
        assert (await hub.client.get(V3)).status_code == 200
        assert time.monotonic() - started >= 0.06


async def test_reset_clears_companies_faults_and_counters() -> None:
    async with running_sandbox() as hub:
        await hub.client.post(V3, json={"properties": {"name": "Acme"}})
        hub.sandbox.set_faults(error_rate=0.5)
        assert (await hub.client.post("/_sandbox/reset")).status_code == 204
        stats = (await hub.client.get("/_sandbox/stats")).json()
        assert (stats["requests"], stats["companies"], stats["faults_injected"]) == (0, 0, 0)
        assert (await hub.client.get("/_sandbox/faults")).json()["error_rate"] == 0.0
        assert (await hub.client.get(V3)).json()["results"] == []


async def test_secondly_headers_scale_the_ten_second_limit_to_one_second() -> None:
    async with running_sandbox(SandboxConfig(rate_limit=RateLimit(100, 10.0))) as hub:
        answers = [await hub.client.get(V3) for _ in range(3)]
        assert {r.headers["X-HubSpot-RateLimit-Secondly"] for r in answers} == {"10"}
        remaining = [int(r.headers["X-HubSpot-RateLimit-Secondly-Remaining"]) for r in answers]
        assert remaining == [9, 8, 7]
        await asyncio.sleep(1.05)  # the second is over; the ten seconds are not
        later = await hub.client.get(V3)
        assert later.headers["X-HubSpot-RateLimit-Secondly-Remaining"] == "9"
        assert later.headers["X-HubSpot-RateLimit-Remaining"] == "96"
        searched = await hub.client.post(f"{V3}/search", json={})
        assert "X-HubSpot-RateLimit-Secondly" not in searched.headers  # search has none
