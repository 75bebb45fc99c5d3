"""What a rule change or a scope change would do, before it is saved.

Computed from what hubsync remembers (`add`): each linked customer's WARP row as it is now,
and per field the HubSpot value and merge base of field memory (what the last sync saw). Each
changed field is decided again with the new rule by the same pure decision the engine uses
(`app.sync.core.decision.decide_field`), so the forecast is what the next sync of each
customer would do as long as HubSpot has not changed since it was last read — which is why
the answer says how old that memory is.

A field whose memory belongs to another HubSpot property (a rule re-pointed) or that has no
memory yet cannot be forecast without reading HubSpot: it is counted as `not_remembered`.

With `refresh=true` the caller reads HubSpot's current values of (some of) the companies first
and decides each such customer as the engine would (`add_read`); the answer counts how many
were decided each way. Pure: the caller reads the rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import Any

from app.sync.core.decision import Action, FieldDecision, decide_field
from app.sync.core.mapping import MappingError, read_warp_values
from app.sync.core.records import FieldMemory
from app.sync.core.rules import FieldRule, rule_to_dict
from app.sync.core.scope import Scope

MAX_EXAMPLES = 20


@dataclass
class FieldForecast:
    field: str
    change: str  # added | changed | removed
    hubspot_property: str | None
    write_hubspot: int = 0
    write_warp: int = 0
    conflicts: int = 0  # conflicts that would open (not counting those open already)
    already_open: int = 0
    not_remembered: int = 0
    unreadable: int = 0
    examples: list[dict[str, Any]] = dataclass_field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "change": self.change,
            "hubspot_property": self.hubspot_property,
            "write_hubspot": self.write_hubspot,
            "write_warp": self.write_warp,
            "conflicts": self.conflicts,
            "conflicts_already_open": self.already_open,
            "not_remembered": self.not_remembered,
            "unreadable": self.unreadable,
            "examples": self.examples,
        }


def changed_rules(
    before: Sequence[FieldRule], after: Sequence[FieldRule]
) -> list[tuple[FieldRule | None, FieldRule | None]]:
    """(old, new) per field whose rule differs, by `warp_field`; None where there is none."""
    old = {rule.warp_field: rule for rule in before}
    new = {rule.warp_field: rule for rule in after}
    names = list(dict.fromkeys([*new, *old]))
    return [
        (old.get(name), new.get(name))
        for name in names
        if old.get(name) is None
        or new.get(name) is None
        or rule_to_dict(old[name]) != rule_to_dict(new[name])
    ]


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


class RulesForecast:
    """Feed it linked customers one by one (`add`), then read `to_json`."""

    def __init__(self, before: Sequence[FieldRule], after: Sequence[FieldRule]) -> None:
        self.changes = changed_rules(before, after)
        self.fields: dict[str, FieldForecast] = {}
        self.rules: list[FieldRule] = []
        for old, new in self.changes:
            rule = new or old
            assert rule is not None  # noqa: S101 - changed_rules never yields (None, None)
            kind = "added" if old is None else "removed" if new is None else "changed"
            self.fields[rule.warp_field] = FieldForecast(
                rule.warp_field, kind, new.hubspot_property if new else None
            )
            if new is not None and new.enabled:
                self.rules.append(new)
        self.customers = 0
        self.refreshed = 0  # of them, decided on HubSpot's values read just now
        self.oldest: datetime | None = None
        self.newest: datetime | None = None

    @property
    def fields_to_read(self) -> list[str]:
        return [rule.warp_field for rule in self.rules]

    def add(
        self,
        customer: Mapping[str, Any],
        memory: Mapping[str, FieldMemory],
        open_conflicts: Collection[str] = frozenset(),
    ) -> None:
        """A customer decided on field memory's HubSpot values (what the last sync saw)."""
        self.customers += 1
        updated_at = _time(customer.get("updated_at"))
        for rule in self.rules:
            forecast = self.fields[rule.warp_field]
            seen = memory.get(rule.warp_field)
            if seen is None or not seen.belongs_to(rule.hubspot_property):
                forecast.not_remembered += 1
                continue
            self._note_age(seen.synced_at)
            try:
                warp = read_warp_values([rule], customer).get(rule.warp_field)
            except MappingError:
                forecast.unreadable += 1
                continue
            if warp == seen.hubspot_value:
                continue  # equal sides: the decision's first step, nothing to do
            warp_time = seen.warp_changed_at if seen.warp_value == warp else updated_at
            decision = decide_field(
                rule, warp, seen.hubspot_value, seen.base_value, warp_time, seen.hubspot_changed_at
            )
            self._count(forecast, str(customer["id"]), decision, open_conflicts)

    def add_read(
        self,
        customer_id: str,
        decisions: Sequence[FieldDecision],
        open_conflicts: Collection[str] = frozenset(),
        unreadable: Collection[str] = frozenset(),
    ) -> None:
        """A customer decided on HubSpot's values as read just now (`refresh=true`): the
        engine's own decision of each changed field, made by the caller from the company it
        read (`unreadable`: the fields it could not decide)."""
        self.customers += 1
        self.refreshed += 1
        by_field = {decision.field: decision for decision in decisions}
        for rule in self.rules:
            forecast = self.fields[rule.warp_field]
            if rule.warp_field in unreadable:
                forecast.unreadable += 1
            elif (decision := by_field.get(rule.warp_field)) is not None:
                self._count(forecast, customer_id, decision, open_conflicts)

    @staticmethod
    def _count(
        forecast: FieldForecast,
        customer_id: str,
        decision: FieldDecision,
        open_conflicts: Collection[str],
    ) -> None:
        if decision.action is Action.NONE:
            return
        if decision.action is Action.WRITE_HUBSPOT:
            forecast.write_hubspot += 1
        elif decision.action is Action.WRITE_WARP:
            forecast.write_warp += 1
        elif forecast.field in open_conflicts:
            forecast.already_open += 1
            return
        else:
            forecast.conflicts += 1
        if len(forecast.examples) < MAX_EXAMPLES:
            forecast.examples.append(
                {
                    "customer_id": customer_id,
                    "warp_value": decision.warp_value,
                    "hubspot_value": decision.hubspot_value,
                    "base_value": decision.base_value,
                    "decision": str(decision.action),
                    "reason": decision.reason,
                }
            )

    def _note_age(self, moment: datetime | None) -> None:
        if moment is None:
            return
        if self.oldest is None or moment < self.oldest:
            self.oldest = moment
        if self.newest is None or moment > self.newest:
            self.newest = moment

    def memory_age(self, now: datetime) -> dict[str, Any]:
        """How old the HubSpot values the forecast used are (when each was last synced)."""
        return {
            "oldest": self.oldest.isoformat() if self.oldest else None,
            "newest": self.newest.isoformat() if self.newest else None,
            "oldest_age_seconds": round((now - self.oldest).total_seconds())
            if self.oldest
            else None,
        }

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "linked_customers": self.customers,
            "decided_on_fresh_reads": self.refreshed,
            "decided_on_memory": self.customers - self.refreshed,
            "fields": [forecast.to_json() for forecast in self.fields.values()],
            "memory": self.memory_age(now),
        }


class ScopeForecast:
    """Who enters and who leaves the sync scope, over every WARP customer (`add`)."""

    def __init__(self, before: Scope, after: Scope) -> None:
        self.before = before
        self.after = after
        self.total = 0
        self.admitted = 0
        self.entering = 0
        self.leaving = 0
        self.entering_unlinked = 0  # would be created in HubSpot by their next sync
        self.leaving_linked = 0  # have a company, left untouched from now on
        self.examples: dict[str, list[str]] = {"entering": [], "leaving": []}

    def add(self, customer: Mapping[str, Any], *, linked: bool) -> None:
        self.total += 1
        was, now = self.before.admits(customer), self.after.admits(customer)
        self.admitted += now
        if now and not was:
            self.entering += 1
            self.entering_unlinked += not linked
            kind = "entering"
        elif was and not now:
            self.leaving += 1
            self.leaving_linked += linked
            kind = "leaving"
        else:
            return
        if len(self.examples[kind]) < MAX_EXAMPLES:
            self.examples[kind].append(str(customer["id"]))

    def to_json(self) -> dict[str, Any]:
        return {
            "customers": self.total,
            "in_scope_after": self.admitted,
            "entering": self.entering,
            "entering_without_company": self.entering_unlinked,
            "leaving": self.leaving,
            "leaving_with_company": self.leaving_linked,
            "examples": self.examples,
        }
