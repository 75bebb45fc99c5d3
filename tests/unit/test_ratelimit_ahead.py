"""A stream's next grant taken while its request is in flight (app/hubspot/ratelimit_ahead.py):
used only while fresh, never across a pause, and each answer still counted from when it came."""

from __future__ import annotations

import asyncio
import time

from app.hubspot.ratelimit import Grant, LocalRateLimiter
from app.hubspot.ratelimit_ahead import GrantAhead
from app.settings import RateLimit


class CountingLimiter(LocalRateLimiter):
    def __init__(self, limit: RateLimit) -> None:
        super().__init__(limit, margin_seconds=0)
        self.handed_out: list[Grant] = []

    async def acquire(self) -> Grant:
        grant = await super().acquire()
        self.handed_out.append(grant)
        return grant


async def test_the_next_grant_is_taken_before_it_is_asked_for() -> None:
    inner = CountingLimiter(RateLimit(100, 10))
    ahead = GrantAhead(inner, fresh_seconds=5)
    first = await ahead.acquire()
    await asyncio.sleep(0.01)  # the request is in flight
    assert len(inner.handed_out) == 2
    second = await ahead.acquire()
    assert (first, second) == (inner.handed_out[0], inner.handed_out[1])
    ahead.close()


async def test_a_grant_taken_too_long_ago_is_left_unused() -> None:
    inner = CountingLimiter(RateLimit(100, 10))
    ahead = GrantAhead(inner, fresh_seconds=0.05)
    await ahead.acquire()
    await asyncio.sleep(0.1)  # the stream waited: the grant ahead is stale
    second = await ahead.acquire()
    assert second is inner.handed_out[2]
    ahead.close()


async def test_no_grant_taken_before_a_pause_is_used_during_it() -> None:
    inner = CountingLimiter(RateLimit(100, 10))
    ahead = GrantAhead(inner, fresh_seconds=5)
    await ahead.acquire()
    await asyncio.sleep(0.01)
    await ahead.pause(0.2, "HubSpot 429")
    started = time.monotonic()
    second = await ahead.acquire()
    assert time.monotonic() - started >= 0.15  # waited for the pause
    assert second is inner.handed_out[2]
    ahead.close()


async def test_each_answer_is_counted_from_when_it_came() -> None:
    inner = CountingLimiter(RateLimit(100, 10))
    ahead = GrantAhead(inner, fresh_seconds=5)
    first = await ahead.acquire()
    granted = first.at
    await asyncio.sleep(0.05)  # in flight
    await ahead.settle(first)  # counted from now on, while the next request goes out
    second = await ahead.acquire()
    await asyncio.sleep(0)
    assert first.at >= granted + 0.05
    await ahead.settle(second)
    ahead.close()
