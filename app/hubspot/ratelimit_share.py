"""A background task's share of HubSpot's window: the reconciliation's HubSpot calls wait
while the deployment-wide window is fuller than the share, so live syncs keep the rest, and
while its own calls would leave live syncs less than a quarter more than the most they held
in any window of late (`acquire_below`): a place the run takes is held a whole window, so
the share is a ceiling, never a claim on room live traffic has been needing.

Wraps the shared limiter (same log, same pauses) and asks it with `acquire_below`, so the
limiter's own API is unchanged for everyone else.
"""

from __future__ import annotations

import math
from typing import Protocol

from app.hubspot.ratelimit import Grant, RateLimiter, WrappedLimiter


class SharedLimiter(RateLimiter, Protocol):
    async def acquire_below(self, ceiling: int) -> Grant: ...


class ShareCappedLimiter(WrappedLimiter):
    """Implements `RateLimiter`: grants only while the window holds fewer than
    `share` x the limit (at least one request)."""

    inner: SharedLimiter

    def __init__(self, inner: SharedLimiter, share: float, requests_per_window: int) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        super().__init__(inner)
        self.ceiling = max(1, math.floor(requests_per_window * share))

    def __repr__(self) -> str:
        return f"ShareCappedLimiter({self.inner!r}, ceiling={self.ceiling})"

    async def acquire(self) -> Grant:
        return await self.inner.acquire_below(self.ceiling)
