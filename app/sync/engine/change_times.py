"""Per-field change times for LATEST_WINS, looked up only where they decide something.

A company's `hs_lastmodifieddate` (like a customer's `updated_at`) moves when *any* field
changes, so it cannot say which of two renames came last. When a LATEST_WINS field changed on
both sides, HubSpot's time for the value it holds is taken, in this order:

1. a stored webhook `propertyChange` for that company, property and value: its `occurredAt`;
2. the property's `propertiesWithHistory`: when the version holding that value was set (read
   only for the contested companies, at most 50 a request — HubSpot's limit with history);
3. otherwise (no event, history unavailable) the documented fallback: `hs_lastmodifieddate`,
   an upper bound for when the field changed.

WARP's side: WARP keeps no per-field times, so a field's time is the row's `updated_at` when
hubsync first saw its current value — noted in `hubspot_field_state` as soon as a sync reads
it, even one that then fails — so a later unrelated edit does not move it. A value changed
and then left unseen until after another edit keeps that later time (an upper bound).
When either time is still unknown, WARP wins (the decision's fixed tiebreak).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from app.hubspot.errors import HubSpotError
from app.store.webhook_events import property_change_times
from app.sync.core.mapping import MappingError, normalize_hubspot
from app.sync.core.rules import Authority, FieldRule
from app.sync.engine.pairs import LAST_MODIFIED, Pair, parse_time
from app.sync.engine.ports import HubSpotPort


def contested(pair: Pair, rules: Sequence[FieldRule]) -> list[FieldRule]:
    """The pair's LATEST_WINS fields changed on both sides to different values."""
    if not pair.company_read or pair.company is None:
        return []
    found = []
    for rule in rules:
        if rule.authority is not Authority.LATEST_WINS:
            continue
        seen = pair.memory.get(rule.warp_field)
        base = seen.base_value if seen is not None else None
        warp = pair.warp_values.get(rule.warp_field)
        hubspot = pair.hubspot_values.get(rule.hubspot_property)
        if warp != hubspot and base not in (warp, hubspot):  # both sides changed
            found.append(rule)
    return found


async def settle_latest_wins(
    pairs: Sequence[Pair], rules: Sequence[FieldRule], *, db: AsyncEngine, hubspot: HubSpotPort
) -> None:
    """Give contested LATEST_WINS fields HubSpot's per-field change time, and decide again."""
    wanted = {id(pair): contested(pair, rules) for pair in pairs}
    open_pairs = [pair for pair in pairs if wanted[id(pair)]]
    if not open_pairs:
        return
    properties = sorted({rule.hubspot_property for p in open_pairs for rule in wanted[id(p)]})
    async with db.connect() as connection:
        changes = await property_change_times(
            connection, [p.company.id for p in open_pairs if p.company], properties
        )
    unresolved: list[Pair] = []
    for pair in open_pairs:
        if not _from_webhooks(pair, wanted[id(pair)], changes):
            unresolved.append(pair)
    if unresolved:
        await _from_history(unresolved, wanted, properties, hubspot)
    for pair in open_pairs:
        pair.decide(rules)


def _from_webhooks(
    pair: Pair,
    rules: Sequence[FieldRule],
    changes: dict[tuple[str, str], list[tuple[str | None, datetime]]],
) -> bool:
    """Set the times webhooks know; whether every contested field got one."""
    assert pair.company is not None  # noqa: S101 -- contested pairs were read
    complete = True
    for rule in rules:
        current = pair.hubspot_values.get(rule.hubspot_property)
        for value, at in changes.get((pair.company.id, rule.hubspot_property), []):
            if _canonical(rule, value) == current:
                pair.hubspot_times[rule.warp_field] = at
                break
        else:
            complete = False
    return complete


async def _from_history(
    pairs: Sequence[Pair],
    wanted: dict[int, list[FieldRule]],
    properties: Sequence[str],
    hubspot: HubSpotPort,
) -> None:
    ids = [pair.company.id for pair in pairs if pair.company is not None]
    try:
        result = await hubspot.batch_read_companies(
            ids, [*properties, LAST_MODIFIED], properties_with_history=properties
        )
    except HubSpotError:
        return  # the fallback (hs_lastmodifieddate) stands; the decision is still made
    for pair in pairs:
        outcome = result.get(pair.company.id) if pair.company is not None else None
        if outcome is None or outcome.company is None:
            continue
        for rule in wanted[id(pair)]:
            current = pair.hubspot_values.get(rule.hubspot_property)
            for version in outcome.company.properties_with_history.get(rule.hubspot_property, []):
                if _canonical(rule, version.value) == current:
                    moment = parse_time(version.timestamp)
                    if moment is not None:
                        pair.hubspot_times[rule.warp_field] = moment
                    break


def _canonical(rule: FieldRule, value: object) -> object:
    try:
        return normalize_hubspot(rule, value)
    except MappingError:
        return object()  # matches nothing
