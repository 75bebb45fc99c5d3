"""The sandbox's latency model: per operation, lognormal, named by mean and p99, off unless
asked for (at start, by preset name, or through /_sandbox/faults)."""

from __future__ import annotations

import random
import statistics
import time

import pytest

from app.cli import main as cli_main
from app.sandbox.config import SandboxConfig
from app.sandbox.latency import PRESETS, LatencyModel, Lognormal, operation_of
from app.sandbox.testing import running_sandbox

V3 = "/crm/v3/objects/companies"


def test_a_lognormal_has_the_mean_and_p99_it_is_named_by() -> None:
    rng = random.Random(1)
    distribution = Lognormal(400, 1200)
    draws = sorted(distribution.sample_ms(rng) for _ in range(40_000))
    assert statistics.fmean(draws) == pytest.approx(400, rel=0.03)
    assert draws[int(0.99 * len(draws))] == pytest.approx(1200, rel=0.08)
    assert draws[len(draws) // 2] < 400  # a tail: the median is below the mean


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("POST", f"{V3}/batch/update", "batch_write"),
        ("POST", f"{V3}/batch/upsert", "batch_write"),
        ("POST", f"{V3}/batch/create", "batch_write"),
        ("POST", f"{V3}/batch/archive", "batch_write"),
        ("POST", "/crm/objects/2026-03/companies/batch/update", "batch_write"),
        ("POST", f"{V3}/batch/read", "batch_read"),
        ("POST", f"{V3}/search", "search"),
        ("PATCH", f"{V3}/1001", "write"),
        ("POST", V3, "write"),
        ("DELETE", f"{V3}/1001", "write"),
        ("GET", f"{V3}/1001", "read"),
        ("GET", "/crm/v3/properties/companies", "read"),
    ],
)
def test_each_request_is_one_operation(method: str, path: str, operation: str) -> None:
    assert operation_of(method, path) == operation


def test_the_preset_writes_slower_than_it_reads() -> None:
    model = PRESETS["hubspot-2026"]
    ops = model.operations
    assert ops["batch_write"].mean_ms == 400
    assert ops["batch_write"].mean_ms > ops["batch_read"].mean_ms > ops["read"].mean_ms
    assert all(d.p99_ms > d.mean_ms for d in ops.values())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hubspot-1999", "unknown latency model"),
        (7, "preset's name or an object"),
        ({"batch_write": {"mean_ms": 400}}, "exactly mean_ms and p99_ms"),
        ({"batch_write": {"mean_ms": "x", "p99_ms": 1}}, "must be numbers"),
        ({"batch_write": {"mean_ms": 400, "p99_ms": 100}}, "0 < mean_ms <= p99_ms"),
        ({"batch_write": {"mean_ms": 10, "p99_ms": 10_000}}, "at most about 15 times"),
        ({"teleport": {"mean_ms": 1, "p99_ms": 2}}, "unknown operations"),
        ({"preset": "hubspot-2026", "scale": 0}, "scale must be"),
    ],
)
def test_a_bad_model_is_refused_with_its_reason(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LatencyModel.from_json(spec)


def test_a_preset_can_be_scaled_and_overridden() -> None:
    model = LatencyModel.from_json(
        {"preset": "hubspot-2026", "scale": 0.1, "read": {"mean_ms": 50, "p99_ms": 100}}
    )
    assert model.name == "custom"
    assert model.scale == 0.1
    assert model.operations["read"] == Lognormal(50, 100)
    assert model.operations["batch_write"] == Lognormal(400, 1200)


async def test_batch_writes_wait_and_control_routes_do_not() -> None:
    async with running_sandbox() as hub:
        model = {"batch_write": {"mean_ms": 300, "p99_ms": 330}}
        response = await hub.client.put("/_sandbox/faults", json={"latency_model": model})
        assert response.status_code == 200
        assert response.json()["latency"]["batch_write"] == {"mean_ms": 300, "p99_ms": 330}
        created = await hub.client.post(V3, json={"properties": {"name": "Acme"}})
        company_id = created.json()["id"]

        started = time.monotonic()
        update = {"inputs": [{"id": company_id, "properties": {"name": "Acme 2"}}]}
        answered = await hub.client.post(f"{V3}/batch/update", json=update)
        took = time.monotonic() - started
        assert answered.status_code == 200
        assert took >= 0.2  # the lognormal's lower tail at this p99/mean is far above 0.2 s

        started = time.monotonic()
        await hub.client.get(f"{V3}/{company_id}")
        await hub.client.get("/_sandbox/stats")
        assert time.monotonic() - started < 0.2  # reads have no latency in this model


async def test_a_bad_model_through_the_control_api_is_a_400() -> None:
    async with running_sandbox() as hub:
        response = await hub.client.put("/_sandbox/faults", json={"latency_model": "nope"})
        assert response.status_code == 400
        assert "unknown latency model" in response.json()["message"]
        assert (await hub.client.get("/_sandbox/faults")).json()["latency_model"] is None


async def test_a_sandbox_started_with_a_model_keeps_it_after_a_reset() -> None:
    async with running_sandbox(SandboxConfig(latency_model="hubspot-2026")) as hub:
        assert (await hub.client.get("/_sandbox/faults")).json()["latency_model"] == "hubspot-2026"
        hub.sandbox.set_faults(latency_model=None, error_rate=0.5)
        assert hub.sandbox.faults.model is None
        await hub.client.post("/_sandbox/reset")
        faults = (await hub.client.get("/_sandbox/faults")).json()
        assert (faults["latency_model"], faults["error_rate"]) == ("hubspot-2026", 0.0)
        assert faults["latency"]["name"] == "hubspot-2026"


async def test_off_by_default() -> None:
    async with running_sandbox() as hub:
        assert hub.sandbox.faults.model is None
        assert hub.sandbox.faults.delay_seconds("POST", f"{V3}/batch/update") == 0.0


def test_the_cli_refuses_an_unknown_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["sandbox", "--latency-model", "hubspot-1999"]) == 2
    assert "unknown preset 'hubspot-1999'" in capsys.readouterr().err
