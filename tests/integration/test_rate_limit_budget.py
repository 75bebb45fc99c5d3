"""What the worker's lanes read from the rate limiter: requests held back by the limit (not
those in line for their turn to ask), and the share of the window in use."""

from __future__ import annotations

import asyncio
import contextlib
import time

from app.hubspot.ratelimit import create_rate_limiter
from app.settings import RateLimit
from tests.conftest import Database
from tests.support import eventually


async def test_requests_held_back_by_a_full_window_are_counted(db: Database) -> None:
    limiter = create_rate_limiter(db.engine, RateLimit(2, 1.0), margin_seconds=0.0)
    assert (limiter.waiting, limiter.used_share) == (0, 0.0)
    await asyncio.gather(limiter.acquire(), limiter.acquire())
    assert limiter.waiting == 0  # both granted at once: nobody was held back
    assert limiter.used_share == 1.0

    queued = [asyncio.create_task(limiter.acquire()) for _ in range(3)]

    async def held_back() -> bool:
        return limiter.waiting == 3

    await eventually(held_back, timeout=2)
    await asyncio.wait_for(asyncio.gather(*queued), timeout=5)  # the window moves on
    assert limiter.waiting == 0


async def test_requests_in_line_for_a_window_with_room_are_not_held_back(db: Database) -> None:
    limiter = create_rate_limiter(db.engine, RateLimit(100, 10.0))
    seen: list[int] = []

    async def ask() -> None:
        seen.append(limiter.waiting)
        await limiter.acquire()
        seen.append(limiter.waiting)

    await asyncio.gather(*(ask() for _ in range(10)))
    assert set(seen) == {0}
    assert limiter.used_share == 0.1


async def test_a_background_share_s_grants_are_left_out_of_the_share_in_use(
    db: Database,
) -> None:
    limiter = create_rate_limiter(db.engine, RateLimit(10, 10.0))
    for _ in range(3):
        await limiter.acquire_below(5)
    await limiter.acquire()
    # The window holds four, but the background task gives way above its ceiling: the lanes
    # pace a trickle by the live request alone.
    assert limiter.used_share == 0.1
    assert limiter.window_count == 4
    for _ in range(6):
        await limiter.acquire()
    refused = asyncio.create_task(limiter.acquire())  # the window is full all the same
    await asyncio.sleep(0.3)
    assert not refused.done()
    refused.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await refused


async def test_a_background_share_leaves_live_traffic_its_recent_peak(db: Database) -> None:
    """A place the background takes is held a whole window: after live traffic needed six of
    ten places, the background (capped at five) takes only what leaves live its peak and a
    quarter more, even once live's own grants have left the window, until the peak is two
    windows old."""
    limiter = create_rate_limiter(db.engine, RateLimit(10, 0.5), margin_seconds=0.0)
    for _ in range(6):
        await limiter.acquire()
    await asyncio.sleep(0.55)  # live's six have left the window; the window is empty
    assert limiter.live_peak == 6
    started = asyncio.get_running_loop().time()
    taken: list[float] = []

    async def background() -> None:
        await limiter.acquire_below(5)
        taken.append(asyncio.get_running_loop().time() - started)

    tasks = [asyncio.create_task(background()) for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    # Ten places less 6 x 1.25 (8) leave two at once; the third waits for live's peak to be
    # two windows (1 s) old, ~0.45 s from here (with no reserve all three went at once).
    assert max(taken[:2]) < 0.3, taken
    assert taken[2] >= 0.35, taken
    assert limiter.live_peak == 0


async def test_a_background_share_keeps_a_tenth_of_its_ceiling_beside_busy_live_traffic(
    db: Database,
) -> None:
    """Live traffic that filled the window leaves the background no room by its reserve, yet
    it may hold a tenth of its ceiling (one place at least): it never stops."""
    limiter = create_rate_limiter(db.engine, RateLimit(10, 0.5), margin_seconds=0.0)
    for _ in range(10):
        await limiter.acquire()
    await asyncio.sleep(0.55)
    assert limiter.live_peak == 10
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(limiter.acquire_below(5), timeout=5)
    assert loop.time() - started < 0.3  # its one place, at once
    second = asyncio.create_task(limiter.acquire_below(5))
    await asyncio.sleep(0.15)
    assert not second.done()  # the second waits for the peak to age out (~0.45 s from here)
    await asyncio.wait_for(second, timeout=5)


async def test_the_background_s_answered_grants_do_not_pass_for_live_ones(db: Database) -> None:
    """A grant counts from its answer: the background's own places, still in the window a
    round trip after their grant, are not live traffic's."""
    limiter = create_rate_limiter(db.engine, RateLimit(10, 0.5), margin_seconds=0.0)
    grants = [await limiter.acquire_below(10) for _ in range(4)]
    await asyncio.sleep(0.3)  # in flight...
    for grant in grants:
        grant.answered = time.monotonic()  # ...answered now
        await limiter.settle(grant)
    await asyncio.sleep(0.3)  # 0.6 s after the grants, 0.3 s after the answers
    await limiter.acquire()  # a live request sees the window: the four and itself
    assert limiter.window_count == 5
    assert limiter.live_peak == 1
