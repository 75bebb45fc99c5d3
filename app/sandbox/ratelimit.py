"""HubSpot's rate limits for a private app, and the record of every request the sandbox saw.

Three policies: a rolling window over every API call but search (TEN_SECONDLY_ROLLING, 100 per
10 s by default), a per-second limit on search alone (SECONDLY, 5/s: HubSpot exempts search
from the ten-second limit), and a daily quota over all calls (DAILY). Refused calls do not
consume quota. Separately, `RequestLog` keeps every request (refused or not) so
tests and benchmarks can prove a client never put more than the limit into any window.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo

from app.settings import RateLimit


@dataclass
class RequestRecord:
    at: float  # time.monotonic() seconds, when the request arrived
    method: str
    path: str
    status: int = 0  # filled in when the answer is sent
    search: bool = False  # outside the general limit
    answered: float | None = None  # time.monotonic() seconds, when the answer started

    def to_json(self) -> dict[str, object]:
        return {
            "at": self.at,
            "answered": self.answered,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "search": self.search,
        }


class SlidingWindow:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._times: deque[float] = deque()

    def _prune(self, now: float) -> None:
        horizon = now - self.limit.window_seconds
        while self._times and self._times[0] <= horizon:
            self._times.popleft()

    def has_room(self, now: float) -> bool:
        self._prune(now)
        return len(self._times) < self.limit.requests

    def take(self, now: float) -> None:
        self._times.append(now)

    def remaining(self, now: float) -> int:
        self._prune(now)
        return max(self.limit.requests - len(self._times), 0)

    def taken_since(self, since: float) -> int:
        """Calls admitted after `since` (within the window): counted from the newest."""
        count = 0
        for at in reversed(self._times):
            if at <= since:
                break
            count += 1
        return count


class ApiLimiter:
    """Admits or refuses one call; refusals name HubSpot's policy."""

    def __init__(
        self,
        rate_limit: RateLimit,
        search_rate_limit: RateLimit,
        daily_limit: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        account_timezone: tzinfo = UTC,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.window = SlidingWindow(rate_limit)
        self.search_window = SlidingWindow(search_rate_limit)
        self.daily_limit = daily_limit
        self.daily_used = 0
        self._clock = clock
        # Like HubSpot, the day turns at midnight in the account's time zone, not UTC's.
        self._zone = account_timezone
        self._wall_clock = wall_clock
        self._day = self._today()

    def _today(self) -> date:
        return self._wall_clock().astimezone(self._zone).date()

    def admit(self, *, search: bool) -> str | None:
        """None when admitted (quota taken), else the policy name that refused the call."""
        now = self._clock()
        today = self._today()
        if today != self._day:
            self._day, self.daily_used = today, 0
        if self.daily_used >= self.daily_limit:
            return "DAILY"
        window, policy = (
            (self.search_window, "SECONDLY") if search else (self.window, "TEN_SECONDLY_ROLLING")
        )
        if not window.has_room(now):
            return policy
        window.take(now)
        self.daily_used += 1
        return None

    def headers(self) -> dict[str, str]:
        """HubSpot's rate-limit headers; the `Secondly` pair is the same limit seen per
        second (100 per 10 s: 10 a second), the calls of the last second taken from it."""
        now = self._clock()
        limit = self.window.limit
        secondly = max(round(limit.requests / limit.window_seconds), 1)
        taken_last_second = self.window.taken_since(now - 1.0)
        return {
            "X-HubSpot-RateLimit-Max": str(limit.requests),
            "X-HubSpot-RateLimit-Remaining": str(self.window.remaining(now)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(round(limit.window_seconds * 1000)),
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_limit - self.daily_used, 0)),
            "X-HubSpot-RateLimit-Secondly": str(secondly),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(max(secondly - taken_last_second, 0)),
        }


def is_write(method: str, path: str) -> bool:
    reads = path.endswith(("/search", "/batch/read"))
    return method in ("POST", "PATCH", "PUT", "DELETE") and not reads


class RequestLog:
    """Every request, and the most seen in any window of the general limit (search, which
    that limit does not cover, is logged but not counted in the window); searches, and the
    most of them in any window of search's own limit.

    The records are bounded (`keep` newest) so a long-running embedded sandbox does not grow
    without end; the totals and the window maximum are exact regardless.
    """

    def __init__(
        self,
        window_seconds: float,
        keep: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        search_window_seconds: float = 1.0,
    ) -> None:
        self.window_seconds = window_seconds
        self.search_window_seconds = search_window_seconds
        self.records: deque[RequestRecord] = deque(maxlen=keep)
        self.total = 0
        self.writes = 0  # requests that may change data (not GET, search or batch read)
        self.max_in_window = 0
        self.searches = 0
        self.max_searches_in_window = 0
        self.by_status: Counter[int] = Counter()
        self._clock = clock
        self._recent: deque[float] = deque()
        self._recent_searches: deque[float] = deque()

    def start(self, method: str, path: str, *, search: bool = False) -> RequestRecord:
        """Log a request on arrival; `finish` records its answer."""
        at = self._clock()
        record = RequestRecord(at, method, path, search=search)
        self.records.append(record)
        self.total += 1
        if is_write(method, path):
            self.writes += 1
        if search:
            self.searches += 1
            recent, width = self._recent_searches, self.search_window_seconds
        else:
            recent, width = self._recent, self.window_seconds
        recent.append(at)
        while recent and recent[0] <= at - width:
            recent.popleft()
        if search:
            self.max_searches_in_window = max(self.max_searches_in_window, len(recent))
        else:
            self.max_in_window = max(self.max_in_window, len(recent))
        return record

    def reset_peaks(self) -> None:
        """Start the window maxima afresh (a benchmark's next phase); totals are kept."""
        self.max_in_window = self.max_searches_in_window = 0
        self._recent.clear()
        self._recent_searches.clear()

    def finish(self, record: RequestRecord, status: int) -> None:
        record.status = status
        record.answered = self._clock()
        self.by_status[status] += 1

    def since(self, at: float) -> list[RequestRecord]:
        """The kept records that arrived after `at`, oldest first."""
        found: list[RequestRecord] = []
        for record in reversed(self.records):
            if record.at <= at:
                break
            found.append(record)
        found.reverse()
        return found

    def now(self) -> float:
        return self._clock()

    def max_requests_in_window(self, window_seconds: float | None = None) -> int:
        """The most kept requests inside any window of this length (default: the limit's)."""
        width = self.window_seconds if window_seconds is None else window_seconds
        times = sorted(r.at for r in self.records if not r.search)
        best, start = 0, 0
        for end, at in enumerate(times):
            while times[start] <= at - width:
                start += 1
            best = max(best, end - start + 1)
        return best
