"""Which of HubSpot's companies the full run has judged: read from both ends at once.

The list API is paged by a cursor, so its pages are round trips one after another: 1,000 of
them for 100,000 companies, however fast HubSpot answers each. So the run reads from both
ends. The list goes up from the lowest id; a search goes down from the highest, sorted by
`hs_object_id` descending and paged by keyset windows (`hs_object_id < the lowest seen`;
offsets only inside a window, below its 10,000-result cap, so the cap never applies; a few
pages in flight at once, `full_run.py`). Search has its own budget (5/s, outside
the ten-second limit): the second stream costs the general window nothing. The two meet in
between, and each company is judged exactly once:

- the list has judged every company up to `list_high` (it lists in ascending id order),
- the search has judged every company from `top_low` up (it asked for exactly those),

so a list page stops at `top_low` and a search page at `list_high`; once either stream
reaches the other, or its own end, the pass is complete. If the list ever answers out of
id order, it can no longer vouch for everything below `list_high`: the search stops and
the list reads on to its end (everything below `top_low`), as it would alone.

The search joins only once the list has read a few pages (`TOP_AFTER_LIST_PAGES` in
`full_run.py`): a small portal is read by the list alone. And it sees HubSpot's index, a few
seconds behind writes, so when the two streams have met, one more search reads what lies
above the search's first page (`hs_object_id` above the highest it judged, ascending):
companies created since the run began or too recently for the index then. A company changed
moments before its page was read can show its earlier values (a drift that `fix` then finds
settled), as a list page read a minute earlier can.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger("hubsync.reconcile")


@dataclass
class Scan:
    """Where both streams stand, as committed with the page judged last (the run's
    `hubspot_scan`; the list's cursor is its `hubspot_after`)."""

    list_high: int | None = None  # highest id the list has judged
    top_low: int | None = None  # lowest id the search has judged
    top_high: int | None = None  # highest id the search (or the tail) has judged
    list_done: bool = False
    top_done: bool = False
    tail_done: bool = False

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Scan:
        return cls(
            list_high=_int(raw.get("list_high")),
            top_low=_int(raw.get("top_low")),
            top_high=_int(raw.get("top_high")),
            list_done=bool(raw.get("list_done")),
            top_done=bool(raw.get("top_done")),
            tail_done=bool(raw.get("tail_done")),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def met(self) -> bool:
        """The list and the search have read everything between them."""
        return self.list_done and self.top_done

    @property
    def done(self) -> bool:
        return self.met and (self.tail_done or self.top_high is None)

    def take_list_page(self, ids: Sequence[int], last: bool) -> set[int]:
        """A list page's ids (in the order listed; `last`: no page follows): the ids to
        judge now. Moves the list on; ends the pass when it reaches the search's ids."""
        ordered = all(a < b for a, b in itertools.pairwise(ids)) and (
            not ids or self.list_high is None or ids[0] > self.list_high
        )
        if not ordered and not self.top_done:
            log.warning(
                "reconciliation: HubSpot's list is not in id order; the search from the top "
                "stops and the list is read to its end"
            )
            self.top_done = True
        judged = {i for i in ids if self.top_low is None or i < self.top_low}
        if judged:
            self.list_high = max(judged if self.list_high is None else {*judged, self.list_high})
        met = ordered and self.top_low is not None and bool(ids) and ids[-1] >= self.top_low
        if last or met:
            # At its end the list has read everything below the search's ids (in order or
            # not): the pass is complete either way.
            self.list_done = self.top_done = True
        return judged

    def take_top_page(self, ids: Sequence[int], last: bool) -> set[int]:
        """A search page's ids (descending; `last`: nothing lower remains): the ids to judge
        now. Moves the search down; ends the pass when it reaches the list's ids or the
        lowest id of all."""
        if self.top_done:
            return set()
        judged = {i for i in ids if self.list_high is None or i > self.list_high}
        if judged:
            self.top_low = min(judged if self.top_low is None else {*judged, self.top_low})
            self.top_high = max(judged if self.top_high is None else {*judged, self.top_high})
        if not ids and self.top_high is None:
            # The index shows nothing (a portal made moments ago): the list reads on alone.
            self.top_done = True
        elif last or len(judged) < len(ids):
            # Down to the list's ids, or to the bottom: together they have read everything.
            self.top_done = self.list_done = True
        return judged

    def take_tail_page(self, ids: Sequence[int], last: bool) -> set[int]:
        """A page of the companies above the search's first page (ascending; `last`: none
        higher remains): the ids to judge now."""
        judged = {i for i in ids if self.top_high is None or i > self.top_high}
        if judged:
            self.top_high = max(judged if self.top_high is None else {*judged, self.top_high})
        if last:
            self.tail_done = True
        return judged


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None
