"""How many of the worker's lanes claim work at a time: enough to fill HubSpot's limit.

Each lane runs one batch at a time, and a batch spends most of its time waiting: on the
database, then on HubSpot (a batch read, a batch write, each a network round trip). To send
HubSpot its limit's worth of requests (100 per 10 s, deployment-wide), enough batches must
be in flight to cover those waits — Little's law: requests in flight = rate x time per
request. A fixed number of lanes fits one latency only: 4 lanes were enough for a sandbox
that answers in milliseconds and ran at 40 % of the limit with HubSpot's real latency.

So the number of claiming lanes follows the rate limiter (`Budget`). After each batch taken
from a backlog: if no request of this process waits for a grant, the limit has room that
more lanes could use, so one more lane joins; if two or more wait, the limit sets the pace
and one lane fewer is enough (one queued request keeps the limit filled the moment a slot
frees). Never more than the configured maximum, never fewer than one.

Without a backlog the first lane alone gathers a trickle of jobs into batches, and another
lane joins only when jobs arrive while the lanes before it are busy and the budget is mostly
unused (below `TRICKLE_SHARE` of the window): jobs then wait for a free lane, not for the
round trip of a batch they missed, and three quarters of the budget stay free for bursts and
for other callers.

Past half the window (`PACE_SHARE`), lane 0 also spaces its claims of a trickle: each claim
costs about two requests (a batch read and a batch write) whatever its size, so jobs taken one
by one as they arrive can spend the window faster than it drains — 10 jobs/s is 20 requests/s
against a limit of 10/s — and once it is full every job waits seconds for room. Spacing claims
by two requests' share of the room left (2 x window/limit / (1 - used share): 0.4 s at half
used, at most a tenth of the window) lets a trickle gather into batches and keeps the window
from filling. In `bench.reconcile` at 100,000 customers (10 live jobs/s, a read and a write
each, sandbox without a latency model) the live p99 went from 5.4 s alone and 4.9 s beside a
reconciliation run capped at half the window to 0.67 s in both. Several processes each see
the deployment's window, so their spacing grows together. A backlog (full claims) is never
paced. The cost: a trickle that starts while a finished backlog's grants still fill the
window is paced too (bench/README.md, "Pacing a trickle").
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

log = logging.getLogger("hubsync.worker")

# A trickle may take lanes while less than this share of the window is used. Simulated at
# 10 jobs/s with hubspot-2026's batch writes: 0 (one lane) p50 786 ms, 57 requests per 200
# jobs; 0.2: p50 584 ms, 77 requests; 0.5: p50 593 ms, 125 requests.
TRICKLE_SHARE = 0.25
START_LANES = 4
# Past this share of the window lane 0 spaces its claims of a trickle, by this many requests'
# share of the room left, at most by this many requests' time at the limit.
PACE_SHARE = 0.5
REQUESTS_PER_CLAIM = 2
MOST_PACED_REQUESTS = 10


class Budget(Protocol):
    """What the lanes read from the HubSpot rate limiter (`app.hubspot.ratelimit`)."""

    @property
    def waiting(self) -> int:
        """This process's requests waiting for a grant now."""
        ...

    @property
    def used_share(self) -> float:
        """Share of the window's budget in use (as of the latest grant)."""
        ...

    @property
    def request_interval(self) -> float:
        """Seconds per request at the limit (the window over its count)."""
        ...


class LaneControl:
    """Which lanes may claim now; lane 0 always may."""

    def __init__(self, lanes: int, budget: Budget | None) -> None:
        self.lanes = lanes
        self.budget = budget
        # Without a budget to read (tests, a handler that does not call HubSpot) every lane
        # joins a backlog, as before.
        self.target = lanes if budget is None else min(lanes, START_LANES)
        self.busy: set[int] = set()
        self.backlog = False  # the latest claim came back full
        self.last_claim = float("-inf")  # monotonic time of the latest claim that took work

    def may_claim(self, lane: int, woken: bool) -> bool:
        """Lane `lane` may claim: it is within the target, the lanes before it are busy,
        and there is a backlog, or (it was woken for new work) a trickle with budget to
        spare."""
        if lane == 0:
            return True
        if lane >= self.target or any(n not in self.busy for n in range(lane)):
            return False
        if self.backlog:
            return True
        return woken and self.budget is not None and self.budget.used_share < TRICKLE_SHARE

    def claim_delay(self, lane: int) -> float:
        """Seconds lane `lane` should wait before it claims a trickle (see the module's
        docstring): 0 but for lane 0 past `PACE_SHARE` of the window without a backlog."""
        if lane != 0 or self.backlog or self.budget is None:
            return 0.0
        used = self.budget.used_share
        if used < PACE_SHARE:
            return 0.0
        interval = self.budget.request_interval
        spacing = REQUESTS_PER_CLAIM * interval / max(1.0 - used, 1e-6)
        spacing = min(spacing, MOST_PACED_REQUESTS * interval)
        return max(0.0, self.last_claim + spacing - time.monotonic())

    def after_claim(self, claimed: int, full: bool) -> None:
        self.backlog = full
        if claimed:
            self.last_claim = time.monotonic()
        if self.budget is None or not full:
            return
        waiting = self.budget.waiting
        before = self.target
        if waiting == 0:
            self.target = min(self.lanes, self.target + 1)
        elif waiting >= 2:
            self.target = max(1, self.target - 1)
        if self.target != before:
            log.debug(
                "lanes: %d claiming (%d request(s) waiting for a grant)", self.target, waiting
            )
