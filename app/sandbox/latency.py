"""How long HubSpot takes to answer, per kind of request: a lognormal draw per operation.

A sandbox that answers in a few milliseconds flatters every figure built on it: a worker that
waits for HubSpot in turn with its own database work looks as fast as one that keeps requests
in flight. So the sandbox can hold each answer back by a time drawn from a lognormal
distribution given by its mean and its 99th percentile, per operation, because HubSpot's
batch writes are slower than its reads and every kind has a tail.

Named presets:

    hubspot-2026   an assumption, not a measurement of HubSpot: round figures of the order
                   HubSpot's public API shows to a private app, with batch writes at the
                   400 ms mean that issue 13's targets are set for:
                   batch write (create/update/upsert/archive)  mean 400 ms, p99 1,200 ms
                   batch read                                  mean 250 ms, p99   800 ms
                   search                                      mean 300 ms, p99 1,000 ms
                   one object written (POST/PATCH/DELETE)      mean 180 ms, p99   600 ms
                   one object or list read (GET)               mean 120 ms, p99   400 ms

A model is given as a preset's name or as a mapping of operation to {"mean_ms", "p99_ms"}
(operations left out answer at once), optionally with "scale" (0.1 makes a test ten times
quicker with the same shape). The delay comes after the rate limit counted the request (as
HubSpot counts arrivals) and before the request is handled, so a write is visible when it is
answered.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from app.sandbox.errors import JsonDict

OPERATIONS = ("batch_write", "batch_read", "search", "write", "read")
Z_99 = 2.3263478740408408  # the standard normal's 99th percentile
_BATCH_WRITES = ("/batch/create", "/batch/update", "/batch/upsert", "/batch/archive")


@dataclass(frozen=True)
class Lognormal:
    """A lognormal distribution of milliseconds, named by its mean and 99th percentile."""

    mean_ms: float
    p99_ms: float

    def __post_init__(self) -> None:
        if self.mean_ms <= 0 or self.p99_ms < self.mean_ms:
            raise ValueError("needs 0 < mean_ms <= p99_ms")
        # ln p99 - ln mean = Z99*sigma - sigma**2/2 needs a real root: p99 at most ~15 x mean.
        if 2 * math.log(self.p99_ms / self.mean_ms) > Z_99**2:
            raise ValueError("p99_ms may be at most about 15 times mean_ms")

    @property
    def sigma(self) -> float:
        # The smaller root of sigma**2/2 - Z99*sigma + ln(p99/mean) = 0.
        return Z_99 - math.sqrt(Z_99**2 - 2 * math.log(self.p99_ms / self.mean_ms))

    @property
    def mu(self) -> float:
        return math.log(self.mean_ms) - self.sigma**2 / 2

    def sample_ms(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma)

    def to_json(self) -> JsonDict:
        return {"mean_ms": self.mean_ms, "p99_ms": self.p99_ms}


@dataclass(frozen=True)
class LatencyModel:
    name: str
    operations: dict[str, Lognormal]
    scale: float = 1.0

    @classmethod
    def from_json(cls, spec: object) -> LatencyModel:
        """A preset's name, or {"preset"?: name, "scale"?: x, <operation>: {mean_ms, p99_ms}};
        ValueError names what is wrong."""
        if isinstance(spec, str):
            if spec not in PRESETS:
                raise ValueError(f"unknown latency model {spec!r}; presets: {sorted(PRESETS)}")
            return PRESETS[spec]
        if not isinstance(spec, dict):
            raise ValueError("latency_model must be a preset's name or an object")  # noqa: TRY004
        body: dict[str, Any] = dict(spec)
        base = cls.from_json(body.pop("preset")) if "preset" in body else None
        scale = body.pop("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= 100:
            raise ValueError("scale must be a number above 0 (at most 100)")
        unknown = set(body) - set(OPERATIONS)
        if unknown:
            raise ValueError(f"unknown operations {sorted(unknown)}; known: {list(OPERATIONS)}")
        operations = dict(base.operations) if base else {}
        for operation, value in body.items():
            if not isinstance(value, dict) or set(value) != {"mean_ms", "p99_ms"}:
                raise ValueError(f"{operation} needs exactly mean_ms and p99_ms")
            if not all(_is_number(v) for v in value.values()):
                raise ValueError(f"{operation}: mean_ms and p99_ms must be numbers")
            operations[operation] = Lognormal(float(value["mean_ms"]), float(value["p99_ms"]))
        name = base.name if base and not body else "custom"
        return cls(name, operations, float(scale))

    def to_json(self) -> JsonDict:
        body: JsonDict = {"name": self.name, "scale": self.scale}
        body.update({op: dist.to_json() for op, dist in self.operations.items()})
        return body

    def delay_seconds(self, method: str, path: str, rng: random.Random) -> float:
        distribution = self.operations.get(operation_of(method, path))
        if distribution is None:
            return 0.0
        return distribution.sample_ms(rng) * self.scale / 1000


def operation_of(method: str, path: str) -> str:
    """Which of OPERATIONS a request to HubSpot's API is."""
    method = method.upper()
    if method == "POST" and path.endswith(_BATCH_WRITES):
        return "batch_write"
    if method == "POST" and path.endswith("/batch/read"):
        return "batch_read"
    if method == "POST" and path.endswith("/search"):
        return "search"
    if method in {"GET", "HEAD"}:
        return "read"
    return "write"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


PRESETS: dict[str, LatencyModel] = {
    "hubspot-2026": LatencyModel(
        "hubspot-2026",
        {
            "batch_write": Lognormal(400, 1200),
            "batch_read": Lognormal(250, 800),
            "search": Lognormal(300, 1000),
            "write": Lognormal(180, 600),
            "read": Lognormal(120, 400),
        },
    ),
}
