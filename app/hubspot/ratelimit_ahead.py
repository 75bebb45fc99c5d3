"""The next grant taken while a request is in flight, for a stream of requests that can only
go one after another (the list API's pages: each needs the cursor of the one before).

Taking a grant is database work on PostgreSQL (the deployment's sliding-window log under an
advisory lock: 10-45 ms, more under load). A stream that takes each grant only once the
request before has answered adds that to every round trip. `GrantAhead` wraps the stream's
limiter: each grant it hands out starts the taking of the next, so that one is ready when
the answer comes.

A grant taken ahead is counted from when it was taken, which is earlier than the request it
serves (never later), and from that request's answer on (`settle`), as every grant is; the
settle too runs while the next request goes out (the grant still counts from when it was
taken, a moment before, in a window of seconds; never used for search's 1 s window). It is
used only while fresh (`fresh_seconds`, well inside the window): a request sent later could
otherwise still be on its way when the grant's first count leaves the window. A grant left
unused (stale, after a pause, or at the stream's end) stays in the log until it leaves the
window: one place of the window lost, never one too many.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from app.hubspot.ratelimit import Grant, RateLimiter, WrappedLimiter


class GrantAhead(WrappedLimiter):
    """Implements `RateLimiter` for one stream of requests one after another: `acquire`
    returns the grant taken while the request before was in flight (if still fresh) and
    starts taking the next. Not for concurrent callers. `close()` when the stream ends."""

    def __init__(self, inner: RateLimiter, fresh_seconds: float) -> None:
        super().__init__(inner)
        self.fresh_seconds = fresh_seconds
        self._next: asyncio.Task[Grant] | None = None
        self._next_asked = 0.0  # when the grant ahead was asked for (monotonic)
        self._settling: asyncio.Task[None] | None = None  # the latest answer's settle

    def __repr__(self) -> str:
        return f"GrantAhead({self.inner!r}, fresh_seconds={self.fresh_seconds})"

    async def acquire(self) -> Grant:
        ahead, asked = self._next, self._next_asked
        self._next = None
        grant: Grant | None = None
        if ahead is not None:
            if time.monotonic() - asked < self.fresh_seconds:
                grant = await ahead  # a pause raised while taking it is raised here
                if time.monotonic() - asked >= self.fresh_seconds:
                    grant = None  # became ready too late to count as fresh: left unused
            else:
                _drop(ahead)
        if grant is None:
            grant = await self.inner.acquire()
        self._next_asked = time.monotonic()
        self._next = asyncio.create_task(self.inner.acquire())
        return grant

    async def settle(self, grant: Grant) -> None:
        """Count `grant` from now on, while the stream's next request goes out: the grant
        counts from when it was taken until then, a moment ago in a window of seconds. The
        settle before is awaited here, so at most one is under way (and its error raised)."""
        before, self._settling = self._settling, asyncio.create_task(self.inner.settle(grant))
        if before is not None:
            await before

    async def pause(self, seconds: float, reason: str) -> None:
        """Pause the bucket; the grant taken ahead (before the pause) is not used."""
        self.close()
        await self.inner.pause(seconds, reason)

    def close(self) -> None:
        """Stop taking the next grant (one already taken stays counted, unused)."""
        if self._next is not None:
            _drop(self._next)
            self._next = None


def _drop(task: asyncio.Task[Grant]) -> None:
    """Cancel the taking of a grant, or leave a grant taken unused (and any error it met:
    the next `acquire` asks the limiter itself)."""
    if task.done():
        with contextlib.suppress(BaseException):
            task.result()
    else:
        task.cancel()
