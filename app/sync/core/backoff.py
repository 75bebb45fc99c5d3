"""When to try a failed job again, and when to stop trying.

Exponential backoff with jitter: the n-th retry waits about `base * 2**(n-1)` seconds (1 s,
2 s, 4 s, … with the defaults), capped at `max_delay`, each multiplied by a random factor in
[1 - jitter, 1 + jitter] so that jobs which failed together do not all come back together.
An upstream's own `Retry-After` replaces the computed delay (plus a little positive jitter, so
it is never undercut). A job keeps retrying until it is `max_age` old, then fails for good.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the core reads the settings' values, never builds or parses them
    from app.settings import Settings

# 2**60 seconds is far beyond any cap; stopping there keeps the float arithmetic finite.
_MAX_EXPONENT = 60


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 1.0
    max_delay_seconds: float = 900.0
    max_age_seconds: float = 86400.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.max_delay_seconds < self.base_seconds:
            raise ValueError("retry delays must be positive, with max_delay >= base")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.max_age_seconds <= 0:
            raise ValueError("max_age must be positive")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            base_seconds=settings.retry_base_seconds,
            max_delay_seconds=settings.retry_max_delay_seconds,
            max_age_seconds=settings.retry_max_age_seconds,
        )

    def nominal_delay(self, attempts: int) -> float:
        """The delay before the next try after `attempts` tries, without jitter."""
        exponent = min(max(attempts, 1) - 1, _MAX_EXPONENT)
        return float(min(self.base_seconds * 2.0**exponent, self.max_delay_seconds))

    def delay(self, attempts: int, *, retry_after: float | None = None) -> float:
        """Seconds to wait after `attempts` tries (1 after the first failure)."""
        if retry_after is not None and retry_after >= 0:
            return retry_after * self.rng.uniform(1.0, 1.0 + self.jitter / 2)
        return self.nominal_delay(attempts) * self.rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)

    def exhausted(self, created_at: datetime, retry_at: datetime) -> bool:
        """True when a job created at `created_at` would retry past its maximum age."""
        return retry_at - created_at > timedelta(seconds=self.max_age_seconds)
