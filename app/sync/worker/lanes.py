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

Without a backlog (a trickle of jobs) any free lane takes new work as it arrives, in lane
order, but claims are spaced: each claim of a trickle costs a request or two (a batch write,
perhaps a read first) whatever its size, so jobs taken one by one as they arrive can spend the
window faster than it drains — 10 jobs/s is 10-20 requests/s against a limit of 10/s — and
once it is full every job waits seconds for room. The spacing is one request's share of the
room left, window/limit / (1 - used share): 0.1 s with the window empty (jobs go at once, in
batches of one or two), 0.2 s at half used, at most a tenth of the window. It gathers only as
the window fills, and it settles where the trickle's own requests keep the window about half
used (a write per claim) or two thirds (a read and a write), so the window never fills. A
backlog (full claims) is never spaced. Several processes read the deployment's window, and a
claim that comes back empty after a wake-up (another process's lane took the job) counts as a
claim, so the processes space their claims as one. A reconciliation's grants, capped at a
share and giving way above it, are not counted in the share read (app/hubspot/ratelimit.py).

Until 2026-12 lane 0 alone took a trickle, gathering whatever arrived during its previous
batch's round trip, other lanes joined only below a quarter of the window, and the spacing
began past half of it: at 10 jobs/s with HubSpot's 400 ms batch writes a job waited about
half a round trip for lane 0 (bench/README.md, "Latency of a trickle").
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

log = logging.getLogger("hubsync.worker")

START_LANES = 4
# A trickle's claims are spaced by this many requests' time at the limit, over the share of the
# window left, at most by MOST_PACED_REQUESTS' time. Simulated at 10 jobs/s with hubspot-2026's
# batch writes (one request per claim, 40 ms of hubsync's own per job): 0.5: p50 459 ms, the
# window 67 % used; 1: 493 ms, 51 %; 2: 548 ms, 34 %.
SPACING_REQUESTS = 1.0
MOST_PACED_REQUESTS = 10


class Budget(Protocol):
    """What the lanes read from the HubSpot rate limiter (`app.hubspot.ratelimit`)."""

    @property
    def waiting(self) -> int:
        """This process's requests waiting for a grant now."""
        ...

    @property
    def used_share(self) -> float:
        """Share of the window's budget in use (as of the latest grant), leaving out grants
        to a background share that gives way above its ceiling."""
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
        self.last_claim = float("-inf")  # monotonic: the latest claim of a trickle (after_claim)

    def may_claim(self, lane: int, woken: bool) -> bool:
        """Lane `lane` may claim: it is within the target, the lanes before it are busy, and
        there is a backlog, or it was woken for new work (the spacing then says when)."""
        if lane == 0:
            return True
        if lane >= self.target or any(n not in self.busy for n in range(lane)):
            return False
        return self.backlog or (woken and self.budget is not None)

    def claim_delay(self) -> float:
        """Seconds before the next claim of a trickle (see the module's docstring); 0 for a
        backlog or without a budget to read."""
        if self.backlog or self.budget is None:
            return 0.0
        interval = self.budget.request_interval
        spacing = SPACING_REQUESTS * interval / max(1.0 - self.budget.used_share, 1e-6)
        spacing = min(spacing, MOST_PACED_REQUESTS * interval)
        return max(0.0, self.last_claim + spacing - time.monotonic())

    def after_claim(self, claimed: int, full: bool, *, woken: bool = False) -> None:
        """`woken`: the lane claimed because it was told of new work. Such a claim that comes
        back empty lost the work to a lane of another process, woken by the same NOTIFY, so it
        counts for the spacing too: the processes then space their claims of a trickle as one
        (with each process spacing only its own claims, two took turns and sent a request per
        job)."""
        self.backlog = full
        if claimed or woken:
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
