"""HubSpot's rate limit, held for the whole deployment.

HubSpot counts requests per account in a rolling window (100 per 10 s by default). Every
hubsync process that shares one PostgreSQL database shares one budget: `PostgresRateLimiter`
keeps a sliding-window log in `hubspot_rate_limit_grants` and hands out a grant only inside a
transaction holding `pg_advisory_xact_lock(<bucket>)`, counting the grants of the last window
by the database's clock, so no window anywhere sees more than the limit. On SQLite (the
embedded default, one process) `LocalRateLimiter` does the same in memory.

Both also:

- count each request from when its answer came back (`settle()`, stamped with the moment the
  caller saw the answer, not when the database got round to it), not only from when it was
  granted: HubSpot counts arrivals, and on a busy machine a request can reach HubSpot well
  after its grant; a grant settled at the answer is never counted earlier than its arrival,
  so a slow request cannot let a window overflow. The window is also counted a little longer
  than HubSpot's (`margin_seconds`, `default_margin`) for our clock's slew against HubSpot's;
- honour a pause (`pause()`), recorded after a 429 so that every process stops, not only the
  one that was refused (PostgreSQL: `hubspot_rate_limit_pauses`). A short pause is waited
  out; one longer than `max_pause_wait` (the daily limit: until midnight) raises
  `RateLimitPausedError` at once, so a worker reschedules its job instead of hanging;
- slow down when HubSpot's `X-HubSpot-RateLimit-Remaining` is lower than the log explains,
  i.e. something else (another integration on the same account) spends the budget: the
  remaining requests are then spread over the interval.

Search has its own budget (5/s) and so its own bucket.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import HubsyncError
from app.settings import RateLimit
from app.sql import fetch_postgres
from app.store.db import each_statement_committed, is_postgres
from app.store.models import GENERAL_BUCKET

logger = logging.getLogger(__name__)

LOW_REMAINING_FRACTION = 0.05
# A background share (`acquire_below`) leaves live requests this much more than the most they
# held in any recent window, and remembers that peak for LIVE_PEAK_WINDOWS windows: a place it
# takes is held a whole window, so it must be one live traffic will not want meanwhile.
LIVE_HEADROOM = 1.25
LIVE_PEAK_WINDOWS = 2
MAX_PAUSE_WAIT = 30.0
DAILY_PAUSE_REASON = "HubSpot daily limit reached"
_PRUNE_EVERY = 50
# Grants are kept three minutes, not only the window: the dashboard's sampler counts each
# minute's requests from this log once the minute is over (app/store/timeseries.py).
GRANTS_KEPT_SECONDS = 180.0


class RateLimitPausedError(HubsyncError):
    """The bucket is paused for longer than a caller should wait in line."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"HubSpot calls paused for {seconds:.0f} s more: {reason}")
        self.seconds = seconds
        self.reason = reason

    @property
    def daily(self) -> bool:
        return self.reason.startswith(DAILY_PAUSE_REASON)


def default_margin(window_seconds: float) -> float:
    """Extra length counted on each window: 0.5 % of it, at most 50 ms.

    Every grant is stamped by the database's one clock and counted from its answer, which
    comes after HubSpot counted its arrival (HubSpot's own processing, ~0.4 s for a batch
    write, lies between), so our window already ends after HubSpot's; what is left is the
    clock's rate against HubSpot's, an NTP slew of at most 0.5 ms a second (5 ms a window).
    Until 2026-12-07 it was 5 %, at most 0.25 s: with the answer's wait, a place in the window
    was held 10.7 s in 10, and one process at 100 / 10 s could not create 480 companies a
    second (bench/README.md, "Sixth pass")."""
    return min(0.05, window_seconds * 0.005)


@dataclass(frozen=True)
class RateLimitHeaders:
    """HubSpot's `X-HubSpot-RateLimit-*` headers on one response (absent on search)."""

    max: int | None = None
    remaining: int | None = None
    interval_seconds: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitHeaders:
        interval = _int(headers.get("x-hubspot-ratelimit-interval-milliseconds"))
        return cls(
            max=_int(headers.get("x-hubspot-ratelimit-max")),
            remaining=_int(headers.get("x-hubspot-ratelimit-remaining")),
            interval_seconds=interval / 1000 if interval else None,
        )


@dataclass
class Grant:
    """One request's place in the window (`at`: local monotonic time; `row_id`: its row in
    PostgreSQL; `answered`: local monotonic time its answer came back, set by the caller
    before `settle`, which then counts the request from that moment rather than its own)."""

    at: float = 0.0
    row_id: int | None = None
    answered: float | None = None


class RateLimiter(Protocol):
    """What the HubSpot client needs from a limiter."""

    bucket: str

    async def acquire(self) -> Grant:
        """Wait until one more request may start, and count it; raise
        `RateLimitPausedError` rather than wait out a long pause."""

    async def settle(self, grant: Grant) -> None:
        """The request was answered (or failed): count it from its answer (`grant.answered`,
        else now) on."""

    async def observe(self, headers: RateLimitHeaders) -> None:
        """Take note of HubSpot's own view of the budget after a response."""

    async def pause(self, seconds: float, reason: str) -> None:
        """Let no request of this bucket start for `seconds` (everywhere it is shared)."""

    @property
    def waiting(self) -> int:
        """This process's requests waiting for a grant now."""

    @property
    def used_share(self) -> float:
        """Share of the window's budget in use (as of the latest grant), leaving out grants
        to a background share (`acquire_below`)."""

    @property
    def request_interval(self) -> float:
        """Seconds per request at the limit (the window over its count)."""


class WrappedLimiter:
    """A `RateLimiter` over another (`inner`: same log, same pauses) that passes every call on
    to it; a subclass overrides how grants are taken."""

    def __init__(self, inner: RateLimiter) -> None:
        self.inner = inner
        self.bucket = inner.bucket

    async def acquire(self) -> Grant:
        return await self.inner.acquire()

    async def settle(self, grant: Grant) -> None:
        await self.inner.settle(grant)

    async def observe(self, headers: RateLimitHeaders) -> None:
        await self.inner.observe(headers)

    async def pause(self, seconds: float, reason: str) -> None:
        await self.inner.pause(seconds, reason)

    @property
    def waiting(self) -> int:
        return self.inner.waiting

    @property
    def used_share(self) -> float:
        return self.inner.used_share

    @property
    def request_interval(self) -> float:
        return self.inner.request_interval


class _Pacing:
    """Spacing between requests while HubSpot reports less room than our own log explains."""

    def __init__(
        self, limit: RateLimit, bucket: str, margin_seconds: float | None, max_pause_wait: float
    ) -> None:
        self.limit = limit
        self.bucket = bucket
        margin = default_margin(limit.window_seconds) if margin_seconds is None else margin_seconds
        self.window = limit.window_seconds + margin  # what counts as "in the window"
        self.max_pause_wait = max_pause_wait
        self.window_count = 0  # requests in our window as of our latest grant
        self._latest_grant = 0.0  # monotonic time of that grant
        # acquire_below's grants while in the window: each counted from its `at` (this
        # process's clock: the grant, then its answer, as the log counts it).
        self._given_way: list[Grant] = []
        # (monotonic time, live requests in the window then): the deployment's window as our
        # asks saw it, less our background grants (a run is the deployment's only one).
        self._live_seen: deque[tuple[float, int]] = deque()
        self._last_used = 0  # requests in the window at our latest ask (granted or not)
        self._in_acquire = 0  # acquire() calls of this process not yet granted
        self._held_back = False  # the one asking now was told to wait for room (or a pause)
        self._spacing = 0.0
        self._spacing_until = 0.0
        self._last_start = 0.0
        self._warned_max = False
        # One task per process at a time asks for a grant (on PostgreSQL: asks the database);
        # the others queue here, in order.
        self._lock = asyncio.Lock()

    @property
    def waiting(self) -> int:
        """Requests of this process waiting because the limit is reached (not those merely
        in line for their turn to ask): above zero, the limit, not the callers, sets the
        pace."""
        return self._in_acquire if self._held_back else 0

    @property
    def used_share(self) -> float:
        """The share of the window's budget in use at our latest grant (0 once that grant is
        older than a window): how much room a caller who is in no hurry may assume.

        Leaves out this process's grants to a background share (`acquire_below`): such a
        caller gives way whenever the window is fuller than its ceiling, so the room it
        holds is the live callers' as soon as they use it, and the worker's spacing of a
        trickle (app/sync/worker/lanes.py) need not grow with it."""
        if time.monotonic() - self._latest_grant > self.window:
            return 0.0
        return max(0, self.window_count - self._background_in_window()) / self.limit.requests

    @property
    def request_interval(self) -> float:
        """Seconds per request at the limit (the counted window over its count)."""
        return self.window / self.limit.requests

    async def acquire(self) -> Grant:
        """Wait until one more request may start, and count it (see `RateLimiter`)."""
        self._in_acquire += 1
        try:
            return await self._acquire()
        finally:
            self._in_acquire -= 1
            if not self._in_acquire:
                self._held_back = False

    async def _acquire(self) -> Grant:
        async with self._lock:
            await self.wait_for_spacing()
            while True:
                outcome = await self._try_grant()
                self._note_live()
                if isinstance(outcome, Grant):
                    return outcome
                await self._hold_back(outcome)

    async def acquire_below(self, ceiling: int) -> Grant:
        """`acquire`, but only while fewer than `ceiling` grants are in the (deployment's)
        window (a background task's share), and while the background's own grants leave
        live requests `LIVE_HEADROOM` times the most they held in any window of late
        (`live_peak`): a place taken is held a whole window, so the share takes only what live
        traffic has not been needing. It waits outside the line, so `acquire` passes
        meanwhile."""
        ceiling = max(1, min(ceiling, self.limit.requests))
        while True:
            async with self._lock:
                if self._background_in_window() >= self._background_room(ceiling):
                    # Live traffic's recent peak leaves no room: wait for it to age out (or
                    # for our own grants to leave the window) before asking the database.
                    outcome: Grant | float = self.request_interval
                else:
                    outcome = await self._try_grant(ceiling)
                    if isinstance(outcome, Grant):
                        outcome.at = outcome.at or time.monotonic()
                        self._given_way.append(outcome)
                    self._note_live()
            if isinstance(outcome, Grant):
                return outcome
            await asyncio.sleep(outcome)

    @property
    def live_peak(self) -> int:
        """The most live (not background) requests the window held at any of our asks in the
        last `LIVE_PEAK_WINDOWS` windows."""
        horizon = time.monotonic() - LIVE_PEAK_WINDOWS * self.window
        while self._live_seen and self._live_seen[0][0] <= horizon:
            self._live_seen.popleft()
        return max((live for _, live in self._live_seen), default=0)

    def _background_room(self, ceiling: int) -> int:
        """How many background grants the window may hold now: the share's ceiling, less
        what live traffic's recent peak (with headroom) needs, but never less than a tenth of
        the ceiling (one place at least): a deployment whose live traffic never rests still
        sees its reconciliation finish, slowly."""
        reserve = math.ceil(self.live_peak * LIVE_HEADROOM)
        return min(ceiling, max(ceiling // 10, 1, self.limit.requests - reserve))

    def _background_in_window(self) -> int:
        """Our background grants the log counts now: in flight, or answered within the
        window (a grant settled at its answer leaves the window a round trip later than it
        would by its grant; counted by its grant, the run's own places would pass for live
        ones)."""
        if self._given_way:  # none in a process without a run: nothing to do per grant
            horizon = time.monotonic() - self.window
            self._given_way = [grant for grant in self._given_way if grant.at > horizon]
        return len(self._given_way)

    def _note_live(self) -> None:
        """Remember the live requests in the window as our latest ask saw it."""
        live = max(0, self._last_used - self._background_in_window())
        # Keep the deque short: a newer sample at least as high outlives older lower ones.
        while self._live_seen and self._live_seen[-1][1] <= live:
            self._live_seen.pop()
        self._live_seen.append((time.monotonic(), live))

    async def _try_grant(self, ceiling: int | None = None) -> Grant | float:
        raise NotImplementedError

    def _granted(self, window_count: int) -> None:
        self.window_count = self._last_used = window_count
        self._latest_grant = time.monotonic()
        self._held_back = False

    async def _hold_back(self, seconds: float) -> None:
        self._held_back = True
        await asyncio.sleep(seconds)

    async def observe(self, headers: RateLimitHeaders) -> None:
        if headers.max is None or headers.remaining is None or not headers.interval_seconds:
            return
        if headers.max < self.limit.requests and not self._warned_max:
            self._warned_max = True
            logger.warning(
                "HubSpot reports a limit of %d per %.0f s, below the configured %s",
                headers.max,
                headers.interval_seconds,
                self.limit,
            )
        used_by_hubspot = headers.max - headers.remaining
        unexplained = used_by_hubspot - self.window_count
        low = headers.remaining <= max(1, int(headers.max * LOW_REMAINING_FRACTION))
        if low and unexplained > max(2, int(headers.max * LOW_REMAINING_FRACTION)):
            self._spacing = headers.interval_seconds / max(headers.remaining, 1)
            self._spacing_until = time.monotonic() + headers.interval_seconds
        elif not low:
            self._spacing = 0.0

    async def wait_for_spacing(self) -> None:
        now = time.monotonic()
        if self._spacing and now < self._spacing_until:
            delay = self._last_start + self._spacing - now
            if delay > 0:
                await asyncio.sleep(delay)
        self._last_start = time.monotonic()


class LocalRateLimiter(_Pacing):
    """One process's sliding-window log, for SQLite and for tests."""

    def __init__(
        self,
        limit: RateLimit,
        *,
        bucket: str = GENERAL_BUCKET,
        margin_seconds: float | None = None,
        max_pause_wait: float = MAX_PAUSE_WAIT,
    ) -> None:
        super().__init__(limit, bucket, margin_seconds, max_pause_wait)
        self._grants: list[Grant] = []
        self._paused_until = 0.0
        self._pause_reason = ""

    def __repr__(self) -> str:
        return f"LocalRateLimiter({self.limit}, bucket={self.bucket!r})"

    async def _try_grant(self, ceiling: int | None = None) -> Grant | float:
        """Record a grant and return it, or return how long to wait before asking again
        (`ceiling`: grant only while fewer than that many are in the window)."""
        limit = self.limit.requests if ceiling is None else ceiling
        now = time.monotonic()
        self._grants = [g for g in self._grants if g.at > now - self.window]
        if now < self._paused_until:
            wait = self._paused_until - now
            if wait > self.max_pause_wait:
                raise RateLimitPausedError(wait, self._pause_reason)
            return wait
        self._last_used = len(self._grants)
        if len(self._grants) >= limit:
            # Room opens when enough of the oldest grants leave the window.
            times = sorted(g.at for g in self._grants)
            return max(0.001, times[len(times) - limit] + self.window - now)
        grant = Grant(at=now)
        self._grants.append(grant)
        self._granted(len(self._grants))
        return grant

    async def settle(self, grant: Grant) -> None:
        answered = time.monotonic() if grant.answered is None else grant.answered
        grant.at = max(grant.at, answered)

    async def pause(self, seconds: float, reason: str) -> None:
        logger.warning("HubSpot %s requests paused for %.1f s: %s", self.bucket, seconds, reason)
        until = time.monotonic() + seconds
        if until >= self._paused_until:
            self._paused_until, self._pause_reason = until, reason


class PostgresRateLimiter(_Pacing):
    """The deployment-wide sliding-window log in PostgreSQL."""

    def __init__(
        self,
        engine: AsyncEngine,
        limit: RateLimit,
        *,
        bucket: str = GENERAL_BUCKET,
        margin_seconds: float | None = None,
        max_pause_wait: float = MAX_PAUSE_WAIT,
        keep_seconds: float = GRANTS_KEPT_SECONDS,
    ) -> None:
        super().__init__(limit, bucket, margin_seconds, max_pause_wait)
        self._engine = engine
        self._keep_seconds = keep_seconds
        # A stable 64-bit key per bucket, the same in every process.
        digest = hashlib.sha256(f"hubsync.ratelimit:{bucket}".encode()).digest()
        self._lock_key = int.from_bytes(digest[:8], "big", signed=True)
        self._grants_made = 0

    def __repr__(self) -> str:
        return f"PostgresRateLimiter({self.limit}, bucket={self.bucket!r})"

    async def settle(self, grant: Grant) -> None:
        """Stamp the grant with its answer's moment on the database's clock: now there, less
        how long ago the answer came back here (a wait for a pooled connection, or for the
        event loop, is not counted as the request's)."""
        answered = time.monotonic() if grant.answered is None else grant.answered
        grant.at = max(grant.at, answered)
        if grant.row_id is not None:
            async with each_statement_committed(self._engine) as autocommit:
                since = max(0.0, time.monotonic() - answered)
                await fetch_postgres(autocommit, _SETTLE, since, grant.row_id)

    async def _try_grant(self, ceiling: int | None = None) -> Grant | float:
        """Record a grant and return it, or return how long to wait before asking again
        (`ceiling`: grant only while fewer than that many are in the window).

        One round trip, made while every other request of the deployment waits for the
        bucket's lock: `hubsync_rate_limit_grant` (migration 0022) takes the lock, then counts
        the window and records the grant in a statement of its own, which sees every grant
        committed before the lock was ours; called outside a transaction, the lock is held
        until that statement commits, and the commit does not wait for the disk (see below)."""
        limit = self.limit.requests if ceiling is None else ceiling
        async with each_statement_committed(self._engine) as autocommit:
            row = (
                await fetch_postgres(
                    autocommit, _GRANT, self._lock_key, self.bucket, self.window, limit
                )
            )[0]
            now: datetime = row[0]
            paused_until: datetime | None = row[1]
            used: int = row[2]
            oldest: datetime | None = row[3]
            row_id: int | None = row[5]
            self._last_used = used
            if row_id is not None:
                self._grants_made += 1
                if self._grants_made % _PRUNE_EVERY == 0:  # outside the lock: it needs none
                    horizon = max(2 * self.window, self._keep_seconds)
                    await fetch_postgres(autocommit, _PRUNE, self.bucket, now, horizon)
        if row_id is not None:
            self._granted(used + 1)
            return Grant(row_id=row_id)
        if paused_until is not None and paused_until > now:
            wait = (paused_until - now).total_seconds()
            if wait > self.max_pause_wait:
                raise RateLimitPausedError(wait, row[4] or "")
            return wait
        if oldest is None:  # pragma: no cover -- refused only when the window holds grants
            return 0.001
        until_oldest_leaves = (oldest - now).total_seconds() + self.window
        if limit < self.limit.requests:  # only the oldest is known: poll sooner
            until_oldest_leaves = min(until_oldest_leaves, self.window / limit)
        return max(0.001, until_oldest_leaves)

    async def pause(self, seconds: float, reason: str) -> None:
        logger.warning("HubSpot %s requests paused for %.1f s: %s", self.bucket, seconds, reason)
        async with self._engine.begin() as conn:
            await conn.execute(
                _PAUSE, {"bucket": self.bucket, "seconds": seconds, "reason": reason[:500]}
            )


# The database's clock is the one clock every process agrees on.
#
# The grants' log does not wait for the disk on commit (synchronous_commit off, for these
# transactions only): each grant commits while every other request of the deployment waits for
# the lock, and on a busy disk the flush was most of that time. What a crash of PostgreSQL can
# lose is the last fraction of a second of grants; the window then undercounts by those few
# for up to ten seconds, and HubSpot's 429 (which pauses every process) covers the rest.
_GRANT = "SELECT * FROM hubsync_rate_limit_grant($1, $2, $3, $4)"
# A statement of its own: `set_config` makes its commit not wait for the disk.
_SETTLE = (
    "UPDATE hubspot_rate_limit_grants SET granted_at = greatest(granted_at, "
    "clock_timestamp() - make_interval(secs => $1)) "
    "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush "
    "WHERE id = $2"
)
_PRUNE = (
    "DELETE FROM hubspot_rate_limit_grants "
    "WHERE bucket = $1 AND granted_at < $2::timestamptz - make_interval(secs => $3)"
)
_PAUSE = text(
    """
    INSERT INTO hubspot_rate_limit_pauses (bucket, until, reason)
    VALUES (:bucket, clock_timestamp() + make_interval(secs => :seconds), :reason)
    ON CONFLICT (bucket) DO UPDATE
    SET until = GREATEST(hubspot_rate_limit_pauses.until, EXCLUDED.until),
        reason = CASE WHEN EXCLUDED.until >= hubspot_rate_limit_pauses.until
                      THEN EXCLUDED.reason ELSE hubspot_rate_limit_pauses.reason END
    """
)


def create_rate_limiter(
    engine: AsyncEngine | None,
    limit: RateLimit,
    *,
    bucket: str = GENERAL_BUCKET,
    margin_seconds: float | None = None,
    max_pause_wait: float = MAX_PAUSE_WAIT,
) -> LocalRateLimiter | PostgresRateLimiter:
    """The deployment-wide limiter on PostgreSQL, the in-process one otherwise."""
    if engine is not None and is_postgres(engine):
        return PostgresRateLimiter(
            engine,
            limit,
            bucket=bucket,
            margin_seconds=margin_seconds,
            max_pause_wait=max_pause_wait,
        )
    return LocalRateLimiter(
        limit, bucket=bucket, margin_seconds=margin_seconds, max_pause_wait=max_pause_wait
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
