"""What hubsync remembers of a pair between syncs, as plain records: the link between a
customer and its company, and each field's memory (the values last seen and the merge base).
The queries that read and write them live in `app.store.sync_state`.

Both are immutable. A field's memory is a NamedTuple rather than a frozen dataclass: a batch
reads about a thousand of them, and a frozen dataclass's `__init__` (a guarded `__setattr__`
per field) costs ten times a tuple's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


@dataclass(frozen=True)
class Link:
    id: int
    warp_customer_id: str | None
    hubspot_company_id: str | None
    warp_ban: str | None
    # active | deleted (in HubSpot) | unmatched (no WARP customer) | merged (its company was
    # merged into one another customer holds: held for an operator) | warp_deleted
    state: str
    hubspot_read_at: datetime | None = None  # when a sync last read the company
    # When HubSpot recorded hubsync's last write to the company (its `updatedAt`).
    hubspot_written_at: datetime | None = None


class FieldMemory(NamedTuple):
    warp_value: str | None
    hubspot_value: str | None
    base_value: str | None
    warp_changed_at: datetime | None
    hubspot_changed_at: datetime | None
    synced_at: datetime | None
    # The HubSpot property all this was remembered with (None: from before it was recorded).
    hubspot_property: str | None = None
    # When hubsync last wrote the field to HubSpot: the time of the read that write was
    # decided on (None: never written, or before it was recorded).
    hubspot_write_read_at: datetime | None = None

    def belongs_to(self, hubspot_property: str) -> bool:
        """Whether this memory (its merge base above all) is the (field, property) pair's:
        a rule re-pointed at another property must start with no base."""
        return self.hubspot_property in (None, hubspot_property)
