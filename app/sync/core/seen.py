"""Whether hubsync already knows what one side holds: each enabled field's value there equals
the value hubsync last saw on that side (its field memory). Pure.

The catch-up asks this of a change it found: a change whose values hubsync has seen (its own
write, or one a sync already read) is no news; any other is queued. Comparing values, not
times, is what makes the answer independent of clocks, of a write that never read the other
side, and of a transaction that committed long after its `updated_at`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app.sync.core.mapping import (
    Canonical,
    MappingError,
    get_path,
    normalize,
    normalize_hubspot,
)
from app.sync.core.records import FieldMemory
from app.sync.core.rules import FieldRule


def warp_seen(
    rules: Sequence[FieldRule], memory: Mapping[str, FieldMemory], record: Mapping[str, Any]
) -> bool:
    """Whether every enabled field of this WARP customer holds what hubsync last saw."""
    return _seen(
        rules,
        memory,
        lambda rule: normalize(rule, get_path(record, rule.warp_field)),
        lambda seen: seen.warp_value,
    )


def hubspot_seen(
    rules: Sequence[FieldRule],
    memory: Mapping[str, FieldMemory],
    properties: Mapping[str, str | None],
) -> bool:
    """Whether every enabled property of this company holds what hubsync last saw there."""
    return _seen(
        rules,
        memory,
        lambda rule: normalize_hubspot(rule, properties.get(rule.hubspot_property)),
        lambda seen: seen.hubspot_value,
    )


def _seen(
    rules: Sequence[FieldRule],
    memory: Mapping[str, FieldMemory],
    value_of: Callable[[FieldRule], Canonical],
    remembered: Callable[[FieldMemory], str | None],
) -> bool:
    for rule in rules:
        if not rule.enabled:
            continue
        try:
            value = value_of(rule)
        except MappingError:
            return False  # a value hubsync cannot read: let a sync say so
        seen = memory.get(rule.warp_field)
        if seen is not None and not seen.belongs_to(rule.hubspot_property):
            seen = None  # remembered for another property: nothing known of this one
        if (remembered(seen) if seen is not None else None) != value:
            return False
    return True
