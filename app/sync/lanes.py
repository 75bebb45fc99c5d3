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
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("hubsync.worker")

# A trickle may take lanes while less than this share of the window is used. Simulated at
# 10 jobs/s with hubspot-2026's batch writes: 0 (one lane) p50 786 ms, 57 requests per 200
# jobs; 0.2: p50 584 ms, 77 requests; 0.5: p50 593 ms, 125 requests.
TRICKLE_SHARE = 0.25
START_LANES = 4


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

    def after_claim(self, full: bool) -> None:
        self.backlog = full
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
