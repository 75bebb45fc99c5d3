"""Deliberate trouble: random HubSpot errors, latency, and duplicated or reordered webhooks.

Latency is a fixed `latency_ms`, a per-operation `latency_model` (app/sandbox/latency.py:
a preset's name such as "hubspot-2026", or per-operation means and p99s), or both added.
A seeded random generator makes a faulty run repeatable. An injected error answers before the
request does anything, as HubSpot's gateway would, so a retried write is never applied twice.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from starlette.responses import JSONResponse

from app.sandbox.errors import ApiError, JsonDict, rate_limit_body
from app.sandbox.latency import LatencyModel

DEFAULT_STATUSES = (429, 500, 502, 503, 423, 477)
_MESSAGES = {
    423: ("LOCKED", "This portal is locked while a large sync completes; retry in a few seconds."),
    477: ("MIGRATION_IN_PROGRESS", "This portal is being migrated; retry after the given delay."),
    500: ("INTERNAL_ERROR", "internal error"),
    502: ("BAD_GATEWAY", "Bad Gateway"),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable"),
    504: ("GATEWAY_TIMEOUT", "Gateway Timeout"),
}


@dataclass(frozen=True)
class Faults:
    error_rate: float = 0.0
    statuses: tuple[int, ...] = DEFAULT_STATUSES
    latency_ms: float = 0.0
    seed: int | None = None
    duplicate_webhooks: float = 0.0
    reorder_webhooks: bool = False
    retry_after_seconds: int = 1  # what 477 (and injected 429) answers carry in Retry-After
    latency_model: str | dict[str, Any] | None = None  # as given; `model` is it parsed

    @property
    def model(self) -> LatencyModel | None:
        return None if self.latency_model is None else LatencyModel.from_json(self.latency_model)

    @classmethod
    def from_json(cls, body: object) -> Faults:
        """Faults from the control API's JSON; ValueError names the bad field."""
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")  # noqa: TRY004 - answered as a 400
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        values: dict[str, Any] = dict(body)
        if "statuses" in values:
            values["statuses"] = tuple(int(s) for s in values["statuses"])
            if not values["statuses"] or any(not 400 <= s <= 599 for s in values["statuses"]):
                raise ValueError("statuses must be a non-empty list of 4xx/5xx codes")
        faults = cls(**values)
        for name in ("error_rate", "duplicate_webhooks"):
            if not 0.0 <= float(getattr(faults, name)) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if faults.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        _ = faults.model  # a bad model is refused here, not on the first request
        return faults

    def settings(self) -> JsonDict:
        """The fields as `from_json` takes them."""
        body = asdict(self)
        body["statuses"] = list(self.statuses)
        return body

    def to_json(self) -> JsonDict:
        body = self.settings()
        model = self.model
        if model is not None:
            body["latency"] = model.to_json()  # what the model means, for the reader
        return body


class FaultInjector:
    def __init__(self, faults: Faults | None = None) -> None:
        self.injected = 0
        self.configure(faults or Faults())

    def configure(self, faults: Faults) -> None:
        self.faults = faults
        self.model = faults.model
        self.rng = random.Random(faults.seed)  # noqa: S311 - chaos, not cryptography
        # Its own generator: turning latency on does not change which requests fail.
        seed = None if faults.seed is None else f"latency:{faults.seed}"
        self.latency_rng = random.Random(seed)  # noqa: S311 - chaos, not cryptography

    def delay_seconds(self, method: str, path: str) -> float:
        """How long to hold this request back before handling it."""
        delay = self.faults.latency_ms / 1000
        if self.model is not None:
            delay += self.model.delay_seconds(method, path, self.latency_rng)
        return delay

    def pick_status(self) -> int | None:
        """The status of an error to inject instead of answering, or None."""
        if self.faults.error_rate <= 0 or self.rng.random() >= self.faults.error_rate:
            return None
        self.injected += 1
        return self.rng.choice(self.faults.statuses)

    def duplicate(self) -> bool:
        rate = self.faults.duplicate_webhooks
        return rate > 0 and self.rng.random() < rate

    def response(self, status: int) -> JSONResponse:
        headers: dict[str, str] = {}
        if status == 429:
            return JSONResponse(rate_limit_body("TEN_SECONDLY_ROLLING"), status_code=429)
        if status == 477:
            headers["Retry-After"] = str(self.faults.retry_after_seconds)
        category, message = _MESSAGES.get(status, ("ERROR", f"Injected error {status}"))
        return JSONResponse(
            ApiError(status, category, message).body(), status_code=status, headers=headers
        )
