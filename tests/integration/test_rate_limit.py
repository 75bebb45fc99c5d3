"""The HubSpot rate limiter on each backend: no window over the limit, pauses, pacing."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest
from sqlalchemy import text

from app.hubspot.ratelimit import (
    DAILY_PAUSE_REASON,
    LocalRateLimiter,
    PostgresRateLimiter,
    RateLimiter,
    RateLimitHeaders,
    RateLimitPausedError,
    create_rate_limiter,
)
from app.settings import RateLimit
from app.store.db import create_engine
from tests.conftest import Database

LIMIT = RateLimit(5, 0.5)


def busiest_window(times: list[float], window: float) -> int:
    """The most grants found in any window of `window` seconds."""
    times = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def grant_times(limiter: RateLimiter, count: int, tasks: int = 4) -> list[float]:
    times: list[float] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await limiter.acquire()
            times.append(time.monotonic())

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return times


async def test_the_factory_picks_the_backend(db: Database) -> None:
    limiter = create_rate_limiter(db.engine, LIMIT)
    expected = PostgresRateLimiter if db.kind == "postgresql" else LocalRateLimiter
    assert type(limiter) is expected
    assert type(create_rate_limiter(None, LIMIT)) is LocalRateLimiter


async def test_no_window_holds_more_than_the_limit(db: Database) -> None:
    limiter = create_rate_limiter(db.engine, LIMIT)
    started = time.monotonic()
    times = await grant_times(limiter, 12)
    assert len(times) == 12
    if db.kind == "postgresql":
        # The grants as the deployment's log dates them: when this process sees a grant
        # come back is later by a round trip that a busy machine can stretch, and a late
        # answer beside a prompt one crowds two windows into one (seen once in a full
        # parallel run of the suite).
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT granted_at FROM hubspot_rate_limit_grants ORDER BY granted_at")
            )
            granted: list[datetime] = [row[0] for row in rows]
        assert len(granted) == 12
        times = [(g - granted[0]).total_seconds() for g in granted]
    assert busiest_window(times, LIMIT.window_seconds) <= LIMIT.requests
    # Three windows' worth: the first five at once, then two more waits of one window.
    assert time.monotonic() - started >= 2 * LIMIT.window_seconds
    assert time.monotonic() - started < 4 * LIMIT.window_seconds


async def test_a_pause_holds_every_request_back(db: Database) -> None:
    limiter = create_rate_limiter(db.engine, RateLimit(100, 1.0))
    await limiter.acquire()
    await limiter.pause(0.4, "HubSpot 429 TEN_SECONDLY_ROLLING")
    started = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - started >= 0.35


async def test_a_long_pause_raises_instead_of_waiting(db: Database) -> None:
    limiter = create_rate_limiter(db.engine, RateLimit(100, 1.0), max_pause_wait=5)
    await limiter.pause(3600, DAILY_PAUSE_REASON)
    await limiter.pause(10, "HubSpot 429 TEN_SECONDLY_ROLLING")  # shorter: does not shorten it
    started = time.monotonic()
    with pytest.raises(RateLimitPausedError) as caught:
        await limiter.acquire()
    assert time.monotonic() - started < 1
    assert caught.value.daily
    assert 3590 < caught.value.seconds <= 3600


@pytest.mark.postgres
async def test_replicas_share_one_budget_and_one_pause(postgres_url: str) -> None:
    engines = [create_engine(postgres_url, pool_size=2) for _ in range(3)]
    try:
        limiters = [PostgresRateLimiter(e, LIMIT) for e in engines]
        await asyncio.gather(*(grant_times(limiter, 6, tasks=3) for limiter in limiters))
        async with engines[0].connect() as conn:
            rows = await conn.execute(
                text("SELECT granted_at FROM hubspot_rate_limit_grants ORDER BY granted_at")
            )
            granted: list[datetime] = [row[0] for row in rows]
        assert len(granted) == 18
        seconds = [(g - granted[0]).total_seconds() for g in granted]
        assert busiest_window(seconds, LIMIT.window_seconds) <= LIMIT.requests

        # A 429 seen by one replica stops the others too.
        await limiters[0].pause(0.5, "HubSpot 429")
        async with engines[0].connect() as conn:
            reason = await conn.scalar(text("SELECT reason FROM hubspot_rate_limit_pauses"))
        assert reason == "HubSpot 429"
        started = time.monotonic()
        await limiters[2].acquire()
        assert time.monotonic() - started >= 0.4
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.mark.postgres
async def test_old_grants_are_pruned(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=2)
    try:
        limiter = PostgresRateLimiter(
            engine, RateLimit(1000, 0.5), margin_seconds=0, keep_seconds=1.0
        )
        for _ in range(60):
            await limiter.acquire()
        await asyncio.sleep(1.1)
        for _ in range(40):  # the 100th grant prunes what is older than two windows
            await limiter.acquire()
        async with engine.connect() as conn:
            left = await conn.scalar(text("SELECT count(*) FROM hubspot_rate_limit_grants"))
        assert left == 40
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_grants_stay_long_enough_for_the_minute_sampler(postgres_url: str) -> None:
    """The dashboard counts each minute's requests from this log once the minute is over, so
    by default grants stay three minutes, however short the window."""
    engine = create_engine(postgres_url, pool_size=2)
    try:
        limiter = PostgresRateLimiter(engine, RateLimit(1000, 0.5), margin_seconds=0)
        for _ in range(60):
            await limiter.acquire()
        await asyncio.sleep(1.1)  # past two windows
        for _ in range(40):  # the 100th grant prunes
            await limiter.acquire()
        async with engine.connect() as conn:
            left = await conn.scalar(text("SELECT count(*) FROM hubspot_rate_limit_grants"))
        assert left == 100
    finally:
        await engine.dispose()


async def test_low_remaining_that_our_log_explains_does_not_slow_down() -> None:
    limiter = LocalRateLimiter(RateLimit(100, 1.0))
    for _ in range(98):
        await limiter.acquire()
    await limiter.observe(RateLimitHeaders(max=100, remaining=2, interval_seconds=1.0))
    started = time.monotonic()
    await limiter.acquire()
    await limiter.acquire()
    assert time.monotonic() - started < 0.1


async def test_low_remaining_spent_by_someone_else_spreads_what_is_left() -> None:
    limiter = LocalRateLimiter(RateLimit(100, 1.0))
    await limiter.acquire()
    # HubSpot says 97 of 100 are used, we sent one: another integration spends the budget.
    await limiter.observe(RateLimitHeaders(max=100, remaining=3, interval_seconds=1.2))
    started = time.monotonic()
    for _ in range(3):
        await limiter.acquire()
    # Three requests spread at 1.2 s / 3 = 0.4 s apart.
    assert time.monotonic() - started >= 0.75
    await limiter.observe(RateLimitHeaders(max=100, remaining=80, interval_seconds=1.2))
    started = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - started < 0.1


async def test_a_slow_request_counts_from_its_answer(db: Database) -> None:
    """HubSpot counts a request when it arrives; one that arrives late (a busy event loop, a
    slow network) must still be inside our window when HubSpot's window ends."""
    limiter = create_rate_limiter(db.engine, RateLimit(2, 0.5), margin_seconds=0.0)
    slow = await limiter.acquire()
    fast = await limiter.acquire()
    await limiter.settle(fast)
    await asyncio.sleep(0.4)  # the slow request is still in flight...
    await limiter.settle(slow)  # ...and answered now, 0.4 s after its grant
    started = time.monotonic()
    third = await limiter.acquire()
    waited = time.monotonic() - started
    await limiter.settle(third)
    # `fast` leaves the window 0.5 s after its grant (~0.1 s from here), which frees one place;
    # had `slow` been counted from its grant, the third would have gone at once as well.
    assert 0.05 <= waited <= 0.4, waited
    fourth_started = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - fourth_started >= 0.3, "the slow request held its place"


async def test_a_late_settle_counts_from_the_answer_not_from_when_it_ran(db: Database) -> None:
    """The answer's moment is what counts: a settle that waits (for a pooled connection, for a
    busy event loop) must not hold the request's place in the window for that wait too."""
    limiter = create_rate_limiter(db.engine, RateLimit(1, 1.0), margin_seconds=0.0)
    grant = await limiter.acquire()
    grant.answered = time.monotonic()  # the answer came back now...
    await asyncio.sleep(0.6)
    await limiter.settle(grant)  # ...and is settled 0.6 s later
    started = time.monotonic()
    await limiter.acquire()
    waited = time.monotonic() - started
    # Its place leaves the window 1 s after the answer, ~0.4 s from here (counted from the
    # settle it would be 1 s).
    assert 0.2 <= waited <= 0.8, waited
