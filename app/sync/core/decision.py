"""The per-field decision: a three-way merge of WARP's value, HubSpot's value and the base.

The base is the last value both sides agreed on (what hubsync last synced). Every source of
work (job, webhook, reconciliation) asks this module what to do, and the answer depends only
on its inputs: canonical values (see `app.sync.core.mapping`), the rule, and change times.

For one field, in this order:

1. Both sides hold the same value: nothing to do; that value becomes the base. This is also
   what stops echoes: a value hubsync wrote comes back equal to the base on both sides.
2. Under "prefer X unless blank", when exactly one side is blank, the non-blank value wins and
   is copied to the blank side if the direction allows; a blank is never written over a value.
   If the direction forbids it, nothing is written and the sides stay different.
3. Changed on one side only (the other still equals the base): that change wins.
4. Changed on both sides to different values: a one-way field takes its source's value;
   otherwise the authority settles it. `WARP` / `HUBSPOT`: that side wins. `LATEST_WINS`: the
   side whose change time is later wins (per-field times: see `app.sync.engine.change_times`);
   when either time is unknown or both are equal,
   **WARP wins** (a fixed tiebreak, so the same inputs always give the same decision; naive
   times are read as UTC). `PREFER_X_UNLESS_BLANK`: X wins (both are non-blank by step 2).
   `MANUAL`: a `CONFLICT` for a person; nothing is written and the base stays.
5. A field with a lossy transform (`email_domain`) whose WARP value is blank has nothing to
   send: HubSpot's value is kept, never cleared (a free-mail customer's domain is unknown, not
   empty).
6. The direction has the last word: a one-way field only ever takes its source's value. A
   winning change on the wrong side (HubSpot edited a WARP -> HubSpot field) is overwritten
   back with the source's value. WARP_TO_HUBSPOT never yields WRITE_WARP, HUBSPOT_TO_WARP
   never yields WRITE_HUBSPOT.

No base (first sync, or never synced) is the same as a blank base: two different non-blank
values count as changed on both sides, while a blank side counts as unchanged, so a company
just created empty in HubSpot never wipes WARP's values.

HubSpot not read: when only WARP changed, the engine may skip reading the company. Pass
`NOT_READ` (or leave the property out of `decide_entity`'s mapping). If WARP still equals the
base there is nothing to do. Otherwise the field is decided from WARP and the base alone when
WARP's value would win whatever HubSpot holds (a WARP -> HubSpot field, or authority WARP, or
"prefer WARP" with a non-blank value); any other field is left undecided with
`needs_hubspot=True`, and the engine should read HubSpot and decide again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Final, NamedTuple, TypeAlias

from app.sync.core.mapping import Canonical
from app.sync.core.rules import Authority, Direction, FieldRule


class Action(StrEnum):
    NONE = "NONE"
    WRITE_HUBSPOT = "WRITE_HUBSPOT"
    WRITE_WARP = "WRITE_WARP"
    CONFLICT = "CONFLICT"


class NotRead(Enum):
    NOT_READ = "not read"


NOT_READ: Final = NotRead.NOT_READ
HubSpotValue: TypeAlias = Canonical | NotRead

_PREFER_BLANK: Final = frozenset(
    {Authority.PREFER_WARP_UNLESS_BLANK, Authority.PREFER_HUBSPOT_UNLESS_BLANK}
)


class _Side(Enum):
    WARP = "WARP"
    HUBSPOT = "HubSpot"


class FieldDecision(NamedTuple):
    """What to do with one field. `value` is the canonical value to write (None = clear).

    A NamedTuple, not a frozen dataclass: a batch of 100 makes about a thousand, and a frozen
    dataclass's `__init__` (a guarded `__setattr__` per field) costs ten times a tuple's."""

    field: str
    action: Action
    value: Canonical
    # What both sides hold once the decision is applied; the old base when they won't agree.
    new_base: Canonical
    reason: str
    hubspot_property: str = ""
    warp_value: Canonical = None
    hubspot_value: HubSpotValue = None
    base_value: Canonical = None
    # Left undecided because HubSpot's value was not read and it matters.
    needs_hubspot: bool = False


@dataclass(frozen=True, slots=True)
class EntityDecision:
    fields: list[FieldDecision]
    hubspot_writes: dict[str, Canonical] = field(default_factory=dict)
    warp_writes: dict[str, Canonical] = field(default_factory=dict)
    conflicts: list[FieldDecision] = field(default_factory=list)
    new_bases: dict[str, Canonical] = field(default_factory=dict)

    @property
    def needs_hubspot_read(self) -> bool:
        return any(decision.needs_hubspot for decision in self.fields)

    @property
    def has_writes(self) -> bool:
        return bool(self.hubspot_writes or self.warp_writes)


def _show(value: HubSpotValue) -> str:
    if value is NOT_READ:
        return "not read"
    return "blank" if value is None else repr(value)


def _utc(moment: datetime) -> datetime:
    # Naive times are taken as UTC so that comparing them with aware ones cannot fail.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _latest(warp_changed_at: datetime | None, hubspot_changed_at: datetime | None) -> _Side:
    if warp_changed_at is None or hubspot_changed_at is None:
        return _Side.WARP
    return _Side.HUBSPOT if _utc(hubspot_changed_at) > _utc(warp_changed_at) else _Side.WARP


class _Decider:
    """The inputs of one field decision, and the answers built from them."""

    def __init__(self, rule: FieldRule, warp: Canonical, hubspot: HubSpotValue, base: Canonical):
        self.rule = rule
        self.warp = warp
        self.hubspot = hubspot
        self.base = base

    def answer(
        self,
        action: Action,
        reason: str,
        value: Canonical = None,
        *,
        new_base: Canonical,
        needs_hubspot: bool = False,
    ) -> FieldDecision:
        rule = self.rule
        return FieldDecision(
            rule.warp_field,
            action,
            value,
            new_base,
            reason,
            rule.hubspot_property,
            self.warp,
            self.hubspot,
            self.base,
            needs_hubspot,
        )

    def keep(self, reason: str) -> FieldDecision:
        return self.answer(Action.NONE, reason, new_base=self.base)

    def write(self, winner: _Side, reason: str) -> FieldDecision:
        """Write the winner's value to the other side, unless the direction says otherwise."""
        direction = self.rule.direction
        if winner is _Side.HUBSPOT and not direction.writes_warp:
            winner = _Side.WARP
            reason += "; the field flows WARP -> HubSpot only, so WARP's value is written back"
        elif winner is _Side.WARP and not direction.writes_hubspot:
            winner = _Side.HUBSPOT
            reason += "; the field flows HubSpot -> WARP only, so HubSpot's value is written back"
        if winner is _Side.WARP:
            if self.warp is None and self.rule.transform is not None:
                # A lossy transform's blank means "nothing to send" (a free-mail address has
                # no company domain), not "clear HubSpot's value".
                return self.keep(f"{reason}; WARP has no value to send, HubSpot's is kept")
            return self.answer(Action.WRITE_HUBSPOT, reason, self.warp, new_base=self.warp)
        if self.hubspot is NOT_READ:
            raise RuntimeError(f"{self.rule.warp_field}: HubSpot cannot win unread")
        return self.answer(Action.WRITE_WARP, reason, self.hubspot, new_base=self.hubspot)


def decide_field(  # noqa: PLR0917 - the six inputs of the merge, in their natural order
    rule: FieldRule,
    warp_value: Canonical,
    hubspot_value: HubSpotValue,
    base_value: Canonical,
    warp_changed_at: datetime | None = None,
    hubspot_changed_at: datetime | None = None,
) -> FieldDecision:
    """Decide one field from canonical values; see the module docstring for the rules."""
    d = _Decider(rule, warp_value, hubspot_value, base_value)
    w, b = warp_value, base_value
    if hubspot_value is NOT_READ:
        return _decide_unread(d)
    h = hubspot_value
    if w == h:
        reason = (
            f"in sync: both sides hold {_show(w)}"
            if w == b
            else f"both sides changed to the same value: {_show(b)} -> {_show(w)}"
        )
        return d.answer(Action.NONE, reason, new_base=w)

    if rule.authority in _PREFER_BLANK and (w is None or h is None):
        blank, full = (_Side.WARP, _Side.HUBSPOT) if w is None else (_Side.HUBSPOT, _Side.WARP)
        kept = h if w is None else w
        reason = (
            f"{blank.value}'s value is blank and {rule.authority} never writes a blank: "
            f"{full.value}'s {_show(kept)} wins"
        )
        can_copy = (
            rule.direction.writes_warp if blank is _Side.WARP else rule.direction.writes_hubspot
        )
        if not can_copy:
            return d.keep(f"{reason}, but the direction {rule.direction} keeps it in {full.value}")
        return d.write(full, reason)

    warp_changed, hubspot_changed = w != b, h != b
    if warp_changed and not hubspot_changed:
        return d.write(_Side.WARP, f"changed in WARP only: {_show(b)} -> {_show(w)}")
    if hubspot_changed and not warp_changed:
        return d.write(_Side.HUBSPOT, f"changed in HubSpot only: {_show(b)} -> {_show(h)}")

    both = f"changed on both sides: {_show(b)} -> WARP {_show(w)}, HubSpot {_show(h)}"
    if rule.direction is Direction.WARP_TO_HUBSPOT:
        return d.write(_Side.WARP, f"{both}; the field flows WARP -> HubSpot only: WARP wins")
    if rule.direction is Direction.HUBSPOT_TO_WARP:
        return d.write(_Side.HUBSPOT, f"{both}; the field flows HubSpot -> WARP only: HubSpot wins")
    match rule.authority:
        case Authority.WARP | Authority.PREFER_WARP_UNLESS_BLANK:
            return d.write(_Side.WARP, f"{both}; authority {rule.authority}: WARP wins")
        case Authority.HUBSPOT | Authority.PREFER_HUBSPOT_UNLESS_BLANK:
            return d.write(_Side.HUBSPOT, f"{both}; authority {rule.authority}: HubSpot wins")
        case Authority.LATEST_WINS:
            winner = _latest(warp_changed_at, hubspot_changed_at)
            if winner is _Side.HUBSPOT:
                why = f"HubSpot changed later ({hubspot_changed_at} after {warp_changed_at})"
            elif warp_changed_at is None or hubspot_changed_at is None:
                why = "a change time is unknown, so WARP wins (tiebreak)"
            elif _utc(warp_changed_at) == _utc(hubspot_changed_at):
                why = f"both changed at {warp_changed_at}, so WARP wins (tiebreak)"
            else:
                why = f"WARP changed later ({warp_changed_at} after {hubspot_changed_at})"
            return d.write(winner, f"{both}; latest change wins: {why}")
        case _:
            return d.answer(
                Action.CONFLICT, f"{both}; authority MANUAL: a person decides", new_base=b
            )


def _warp_wins_unread(rule: FieldRule, w: Canonical) -> bool:
    """WARP's changed value wins whatever HubSpot holds (a WARP -> HubSpot-only field aside)."""
    return rule.direction.writes_hubspot and (
        rule.authority is Authority.WARP
        or (rule.authority is Authority.PREFER_WARP_UNLESS_BLANK and w is not None)
    )


def unread_needs_hubspot(rule: FieldRule, warp_value: Canonical, base_value: Canonical) -> bool:
    """Whether deciding this field needs HubSpot's value: exactly when `decide_field` with
    `NOT_READ` answers `needs_hubspot=True`, without building the answer (the engine asks
    before reading, then decides once with what it read)."""
    return (
        warp_value != base_value
        and rule.direction is not Direction.WARP_TO_HUBSPOT
        and not _warp_wins_unread(rule, warp_value)
    )


def _decide_unread(d: _Decider) -> FieldDecision:
    rule, w, b = d.rule, d.warp, d.base
    if w == b:
        return d.keep(f"unchanged in WARP ({_show(w)}); HubSpot not read")
    changed = f"changed in WARP: {_show(b)} -> {_show(w)}; HubSpot not read"
    prefers_blank = rule.authority in _PREFER_BLANK
    if rule.direction is Direction.WARP_TO_HUBSPOT:
        if prefers_blank and w is None:
            return d.keep(f"{changed}; {rule.authority} never writes a blank")
        return d.write(_Side.WARP, f"{changed}; the field flows WARP -> HubSpot")
    if _warp_wins_unread(rule, w):
        return d.write(_Side.WARP, f"{changed}; authority {rule.authority}: WARP wins")
    return d.answer(
        Action.NONE,
        f"{changed}; HubSpot's value is needed to decide",
        new_base=b,
        needs_hubspot=True,
    )


def decide_entity(  # noqa: PLR0917 - mirrors decide_field's inputs, per entity
    rules: Iterable[FieldRule],
    warp_values: Mapping[str, Canonical],
    hubspot_values: Mapping[str, Canonical],
    bases: Mapping[str, Canonical],
    warp_changed_at: Mapping[str, datetime | None] | None = None,
    hubspot_changed_at: Mapping[str, datetime | None] | None = None,
) -> EntityDecision:
    """Decide every enabled field of one customer/company pair.

    `warp_values`, `bases` and both change-time mappings are keyed by warp_field;
    `hubspot_values` by HubSpot property. A missing WARP value is blank, a missing base means
    "never synced" (decided like a blank base), and a missing HubSpot property means HubSpot
    was not read. Disabled rules are skipped.
    """
    warp_times = warp_changed_at or {}
    hubspot_times = hubspot_changed_at or {}
    result = EntityDecision(fields=[])
    fields, new_bases = result.fields, result.new_bases
    for rule in rules:
        if not rule.enabled:
            continue
        name, prop = rule.warp_field, rule.hubspot_property
        w, h, b = warp_values.get(name), hubspot_values.get(prop, NOT_READ), bases.get(name)
        if w == b and (h is NOT_READ or h == w):
            # Most fields of most syncs: nothing changed. `decide_field`'s answer, built here
            # without its steps (a batch has about a thousand of these).
            shown = "blank" if w is None else repr(w)
            reason = (
                f"unchanged in WARP ({shown}); HubSpot not read"
                if h is NOT_READ
                else f"in sync: both sides hold {shown}"
            )
            fields.append(FieldDecision(name, Action.NONE, None, b, reason, prop, w, h, b))
            new_bases[name] = b
            continue
        decision = decide_field(rule, w, h, b, warp_times.get(name), hubspot_times.get(name))
        fields.append(decision)
        new_bases[name] = decision.new_base
        if decision.action is Action.WRITE_HUBSPOT:
            result.hubspot_writes[rule.hubspot_property] = decision.value
        elif decision.action is Action.WRITE_WARP:
            result.warp_writes[name] = decision.value
        elif decision.action is Action.CONFLICT:
            result.conflicts.append(decision)
    return result
