"""One customer/company pair on its way through a sync: what each side holds, what hubsync
remembers, and what the decision says to write. Pure: no I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.hubspot.models import HubSpotCompany
from app.sync.core.decision import Action, EntityDecision, decide_entity, unread_needs_hubspot
from app.sync.core.identity import normalize_ban
from app.sync.core.jobs import ClaimedJob
from app.sync.core.mapping import (
    Canonical,
    MappingError,
    canonical_to_warp,
    normalize_hubspot,
    read_warp_values,
)
from app.sync.core.records import FieldMemory, Link
from app.sync.core.rules import IDENTITY_WARP_FIELD, FieldRule

LAST_MODIFIED = "hs_lastmodifieddate"


def asked_at() -> datetime:
    """When a request to HubSpot is sent, as a 404 in its answer dates the company's end:
    the millisecond before this one. HubSpot dates its events in whole milliseconds, so a
    restore dated this very millisecond may have followed the request, and must win."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000) - timedelta(milliseconds=1)


def parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        if value.isdigit():  # epoch milliseconds, as webhooks give
            return datetime.fromtimestamp(int(value) / 1000, UTC)
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_NOTHING, _TO_HUBSPOT, _TO_WARP = Action.NONE, Action.WRITE_HUBSPOT, Action.WRITE_WARP
# A field with no memory yet: compared against nothing (its row is always written).
_NO_MEMORY = FieldMemory(None, None, None, None, None, None, None, None)


@dataclass(eq=False)  # a pair is itself: `pair in pairs` asks which one, not an equal one
class Pair:
    job: ClaimedJob
    customer: dict[str, Any]
    link: Link | None
    memory: Mapping[str, FieldMemory]
    company: HubSpotCompany | None = None  # None: not read, or not in HubSpot
    company_read: bool = False
    warp_values: dict[str, Canonical] = field(default_factory=dict)
    warp_times: dict[str, datetime | None] = field(default_factory=dict)
    hubspot_values: dict[str, Canonical] = field(default_factory=dict)
    hubspot_times: dict[str, datetime | None] = field(default_factory=dict)
    # HubSpot values hubsync cannot read, by property: the reason, for the operator.
    unreadable: dict[str, str] = field(default_factory=dict)
    read_at: datetime | None = None  # when HubSpot's answer with the company arrived
    # When HubSpot recorded this sync's write of the company (its answer's `updatedAt`).
    written_at: datetime | None = None
    # CRM edits a sync overwrote (app/sync/engine/crm_edits.py): property -> what HubSpot holds now.
    overwritten: dict[str, Canonical] = field(default_factory=dict)
    decision: EntityDecision | None = None
    # Held back by an operator's pause (`hold`): the fields left as they are, and what each
    # paused side would have received (HubSpot by property, WARP by field).
    held_fields: set[str] = field(default_factory=set)
    held_hubspot: dict[str, Canonical] = field(default_factory=dict)
    held_warp: dict[str, Canonical] = field(default_factory=dict)
    held_create: bool = False  # the company would have been created in HubSpot
    held_company_id: bool = False  # the company's id would have been recorded in WARP
    # Skipped as out of the sync scope since its last sync: HubSpot is read before deciding.
    returning: bool = False
    _customer_id: str | None = field(default=None, init=False, repr=False)
    _owned_for: Sequence[FieldRule] | None = field(default=None, init=False, repr=False)

    @property
    def customer_id(self) -> str:
        # Asked a dozen times per pair and batch; a UUID's str() is not free.
        if self._customer_id is None:
            self._customer_id = str(self.customer["id"])
        return self._customer_id

    @property
    def ban(self) -> str:
        """The customer's ban as compared and written (`normalize_ban`); "" when none."""
        return normalize_ban(self.customer.get(IDENTITY_WARP_FIELD)) or ""

    @property
    def company_id(self) -> str | None:
        if self.company is not None:
            return self.company.id
        return self.link.hubspot_company_id if self.link else None

    def _own_memory(self, rules: Sequence[FieldRule]) -> None:
        """Keep only what was remembered for each rule's current (field, property) pair: after
        a rule is pointed at another property, that field starts with no base, so the new,
        empty property never reads as "cleared in HubSpot" and a blank never wins."""
        if self._owned_for is rules:  # read_hubspot after read_warp: done already
            return
        self._owned_for = rules
        # `seen.belongs_to(property)`, inline: a batch asks it of about a thousand memories,
        # and nearly always every one belongs (a rule is rarely re-pointed).
        memory = self.memory
        for rule in rules:
            seen = memory.get(rule.warp_field)
            if seen is not None and seen.hubspot_property not in (None, rule.hubspot_property):
                break
        else:
            return
        property_of = {rule.warp_field: rule.hubspot_property for rule in rules}
        self.memory = {
            name: seen
            for name, seen in self.memory.items()
            if seen.hubspot_property is None
            or seen.hubspot_property == property_of.get(name, seen.hubspot_property)
        }

    def read_warp(
        self, rules: Sequence[FieldRule], captured: Mapping[str, datetime] | None = None
    ) -> None:
        """WARP's canonical values, and when each last changed, when the value differs from
        what hubsync last saw: the time WARP's change capture noted for the field's column
        (`captured`, when installed), else the customer's own `updated_at` (the source's
        time, never hubsync's clock)."""
        self._own_memory(rules)
        self.warp_values = read_warp_values(rules, self.customer)
        updated_at = parse_time(self.customer.get("updated_at"))
        captured = captured or {}
        for name, value in self.warp_values.items():
            seen = self.memory.get(name)
            if seen is None or seen.warp_value != value:
                self.warp_times[name] = captured.get(name.partition(".")[0], updated_at)
            else:
                self.warp_times[name] = seen.warp_changed_at

    def new_warp_sightings(self, rules: Sequence[FieldRule]) -> list[dict[str, Any]]:
        """WARP values hubsync has not seen before, with their time, for `note_warp_values`."""
        property_of = {rule.warp_field: rule.hubspot_property for rule in rules}
        return [
            {
                "warp_customer_id": self.customer_id,
                "field": name,
                "hubspot_property": property_of[name],
                "warp_value": value,
                "warp_changed_at": self.warp_times.get(name),
            }
            for name, value in self.warp_values.items()
            if name in property_of
            and ((seen := self.memory.get(name)) is None or seen.warp_value != value)
        ]

    def read_hubspot(self, rules: Sequence[FieldRule], company: HubSpotCompany | None) -> None:
        """HubSpot's values (all blank when the company does not exist yet)."""
        self._own_memory(rules)
        self.company = company
        self.company_read = True
        properties = company.properties if company is not None else {}
        self.hubspot_values, self.unreadable = _read_each(rules, properties)
        modified = parse_time(properties.get(LAST_MODIFIED))
        by_property = {rule.hubspot_property: rule.warp_field for rule in rules}
        for prop, value in self.hubspot_values.items():
            name = by_property[prop]
            seen = self.memory.get(name)
            history = company.properties_with_history.get(prop) if company else None
            changed = parse_time(history[0].timestamp) if history else modified
            if seen is None or seen.hubspot_value != value:
                self.hubspot_times[name] = changed
            else:
                self.hubspot_times[name] = seen.hubspot_changed_at

    def unreadable_reason(self, rules: Sequence[FieldRule]) -> str | None:
        """Why this pair cannot be decided: a HubSpot value it cannot read on a field HubSpot
        may win. (On a WARP -> HubSpot field the value is simply overwritten with WARP's.)"""
        reasons = [
            f"HubSpot property {rule.hubspot_property} holds a value hubsync cannot read "
            f"({self.unreadable[rule.hubspot_property]}); correct it in HubSpot"
            for rule in rules
            if rule.hubspot_property in self.unreadable and rule.direction.writes_warp
        ]
        return "; ".join(reasons) or None

    def take_overwritten_edits(
        self, rules: Sequence[FieldRule], edits: Mapping[str, tuple[str | None, datetime]]
    ) -> None:
        """Decide with a CRM edit's value where a sync's write overwrote it: HubSpot still
        holds what hubsync last wrote or saw, and the newer edit says otherwise."""
        for rule in rules:
            edit, seen = edits.get(rule.hubspot_property), self.memory.get(rule.warp_field)
            if edit is None or seen is None or rule.hubspot_property in self.unreadable:
                continue
            if edit[1] <= self.edits_unseen_after(rule):  # hubsync's read or write knew it
                continue
            # Older than the value hubsync saw there: a later edit whose webhook is not in yet
            # set that value, and nothing of hubsync's overwrote this one.
            if seen.hubspot_changed_at is not None and edit[1] <= seen.hubspot_changed_at:
                continue
            try:
                value = normalize_hubspot(rule, edit[0])
            except MappingError:
                continue
            now_held = self.hubspot_values.get(rule.hubspot_property)
            if value != now_held and now_held == seen.hubspot_value:
                self.overwritten[rule.hubspot_property] = now_held
                self.hubspot_values[rule.hubspot_property] = value
                self.hubspot_times[rule.warp_field] = edit[1]

    def edits_unseen_after(self, rule: FieldRule) -> datetime:
        """Since when a CRM edit of the rule's property may have been overwritten unseen: the
        read behind hubsync's last write of the field, else the link's last read."""
        seen = self.memory.get(rule.warp_field)
        if seen is not None and seen.hubspot_write_read_at is not None:
            return seen.hubspot_write_read_at
        read_at = self.link.hubspot_read_at if self.link is not None else None
        assert read_at is not None  # noqa: S101 -- asked of pairs read before only
        return read_at

    def needs_hubspot_read(self, rules: Sequence[FieldRule]) -> bool:
        """Whether deciding needs HubSpot's values: `decide(rules).needs_hubspot_read`,
        without deciding (a pair that must read is decided once, after the read)."""
        memory, warp_values, hubspot_values = self.memory, self.warp_values, self.hubspot_values
        for rule in rules:
            if not rule.enabled or rule.hubspot_property in hubspot_values:
                continue
            seen = memory.get(rule.warp_field)
            base = seen.base_value if seen is not None else None
            value = warp_values.get(rule.warp_field)
            if value != base and unread_needs_hubspot(rule, value, base):  # unchanged: never
                return True
        return False

    def decide(self, rules: Sequence[FieldRule]) -> EntityDecision:
        bases = {name: seen.base_value for name, seen in self.memory.items()}
        self.decision = decide_entity(
            rules,
            self.warp_values,
            self.hubspot_values,
            bases,
            self.warp_times,
            self.hubspot_times,
        )
        for decision in self.decision.fields if self.overwritten else ():
            prop = decision.hubspot_property
            if prop not in self.overwritten or decision.action is Action.CONFLICT:
                continue
            # HubSpot really holds the overwritten value: write it the value both sides end
            # with, whoever won.
            final = decision.value if decision.action is Action.WRITE_HUBSPOT else decision.new_base
            if final != self.overwritten[prop]:
                self.decision.hubspot_writes[prop] = final
            else:
                self.decision.hubspot_writes.pop(prop, None)
        return self.decision

    @property
    def holds_hubspot(self) -> bool:
        return bool(self.held_hubspot) or self.held_create

    @property
    def holds_warp(self) -> bool:
        return bool(self.held_warp) or self.held_company_id

    def hold(self, *, hubspot: bool, warp: bool) -> None:
        """Leave unwritten what goes to a paused side (`hubspot`: outbound is paused, `warp`:
        inbound is). A field is held whole — both of its writes and its state, which is not
        recorded, so the sync after the resume decides it again from both sides as they are
        then. A company that would be created holds the whole customer: nothing of it is
        written before its company exists."""
        decision = self.decision
        assert decision is not None  # noqa: S101 -- decided before held
        if hubspot and self.company_id is None:
            self.held_create = True
        for item in decision.fields:
            name, prop = item.field, item.hubspot_property
            to_hubspot = prop in decision.hubspot_writes
            to_warp = name in decision.warp_writes
            if not (self.held_create or (hubspot and to_hubspot) or (warp and to_warp)):
                continue
            self.held_fields.add(name)
            if to_hubspot:
                value = decision.hubspot_writes.pop(prop)
                if hubspot:
                    self.held_hubspot[prop] = value
            if to_warp:
                value = decision.warp_writes.pop(name)
                if warp:
                    self.held_warp[name] = value
        if warp and self.warp_company_id() is not None:
            self.held_company_id = True

    def writes_warp(self) -> bool:
        """Whether this pair has anything to write to WARP: HubSpot-won fields or its id."""
        return bool(self.decision and self.decision.warp_writes) or (
            self.warp_company_id() is not None
        )

    def warp_company_id(self) -> str | None:
        """The HubSpot id to record in WARP's `external_ids`: None when it is recorded there
        already, when there is no company yet, or while inbound is paused."""
        company_id = self.company_id
        recorded = (self.customer.get("external_ids") or {}).get("hubspot_company_id")
        if not company_id or recorded == company_id or self.held_company_id:
            return None
        return company_id

    def held(self) -> dict[str, Any] | None:
        """For the job's result: what a pause held back, None when nothing."""
        if not (self.holds_hubspot or self.holds_warp):
            return None
        to_warp = sorted(self.held_warp)
        if self.held_company_id:
            to_warp.append("external_ids.hubspot_company_id")
        return {
            "to_hubspot": sorted(self.held_hubspot),
            "to_warp": to_warp,
            "create_company": self.held_create,
        }

    def warp_updates(self, rules: Sequence[FieldRule]) -> dict[str, Any]:
        assert self.decision is not None  # noqa: S101 -- decided before applied
        by_field = {rule.warp_field: rule for rule in rules}
        return {
            name: canonical_to_warp(by_field[name], value)
            for name, value in self.decision.warp_writes.items()
        }

    def field_state_rows(self, synced_at: datetime) -> list[dict[str, Any]]:
        """What each side holds once the decision is applied, and the new base — only for
        fields where any of it differs from what hubsync remembered (`synced_at` is when a
        field's state last changed). A field written to HubSpot remembers the read that write
        was decided on: a CRM edit after it was overwritten (app/sync/engine/crm_edits.py)."""
        assert self.decision is not None  # noqa: S101 -- decided before applied
        rows = []
        hubspot_writes = self.decision.hubspot_writes
        # Not read by this sync: its write was decided on what the last read left.
        write_read_at = self.read_at or (self.link.hubspot_read_at if self.link else None)
        # Locals, and each memory unpacked once: a batch asks this of about a thousand fields.
        held, memory, hubspot_values = self.held_fields, self.memory, self.hubspot_values
        warp_values, warp_times, hubspot_times = (
            self.warp_values,
            self.warp_times,
            self.hubspot_times,
        )
        for decision in self.decision.fields:
            name, action, value, new_base, _, prop = decision[:6]
            if name in held:  # not written: decided again after the resume
                continue
            seen = memory.get(name)
            if seen is None:
                seen = _NO_MEMORY
            (
                seen_warp,
                seen_hubspot,
                seen_base,
                seen_warp_at,
                seen_hubspot_at,
                _,
                seen_prop,
                seen_wrote,
            ) = seen
            warp_value = warp_values.get(name)
            warp_time = warp_times.get(name)
            hubspot_value: Canonical = hubspot_values.get(prop, seen_hubspot)
            hubspot_time = hubspot_times.get(name, seen_hubspot_at)
            if action is _TO_HUBSPOT:
                hubspot_value, hubspot_time = value, warp_time
            elif action is _TO_WARP:
                warp_value, warp_time = value, hubspot_time
            wrote_after = write_read_at if prop in hubspot_writes else seen_wrote
            if (
                seen is not _NO_MEMORY
                and warp_value == seen_warp
                and hubspot_value == seen_hubspot
                and new_base == seen_base
                and warp_time == seen_warp_at
                and hubspot_time == seen_hubspot_at
                and wrote_after == seen_wrote
                and prop == seen_prop
            ):
                continue
            rows.append(
                {
                    "warp_customer_id": self.customer_id,
                    "field": name,
                    "hubspot_property": prop,
                    "warp_value": warp_value,
                    "hubspot_value": hubspot_value,
                    "base_value": new_base,
                    "warp_changed_at": warp_time,
                    "hubspot_changed_at": hubspot_time,
                    "synced_at": synced_at,
                    "hubspot_write_read_at": wrote_after,
                }
            )
        return rows

    def changes(self) -> list[dict[str, Any]]:
        """The log's view: every field written, old -> new, and why."""
        assert self.decision is not None  # noqa: S101 -- decided before applied
        entries = []
        held = self.held_fields
        for decision in self.decision.fields:
            action = decision[1]
            if action is _NOTHING or decision[0] in held:  # most fields: nothing written
                continue
            if action is _TO_HUBSPOT:
                old = self.hubspot_values.get(decision.hubspot_property)
                target = "hubspot"
            elif action is _TO_WARP:
                old, target = self.warp_values.get(decision.field), "warp"
            else:
                continue
            entries.append(
                {
                    "field": decision.field,
                    "property": decision.hubspot_property,
                    "target": target,
                    "old": old,
                    "new": decision.value,
                    "reason": decision.reason,
                }
            )
        if not self.overwritten:
            return entries
        for decision in self.decision.fields:
            prop = decision.hubspot_property
            if (
                prop in self.overwritten
                and decision.field not in self.held_fields
                and decision.action is not Action.WRITE_HUBSPOT
                and prop in self.decision.hubspot_writes
            ):
                entries.append(
                    {
                        "field": decision.field,
                        "property": prop,
                        "target": "hubspot",
                        "old": self.overwritten[prop],
                        "new": self.decision.hubspot_writes[prop],
                        "reason": "a CRM edit newer than hubsync's read was overwritten by "
                        "hubsync's write; decided again with it",
                    }
                )
        return entries


def _read_each(
    rules: Sequence[FieldRule], properties: Mapping[str, str | None]
) -> tuple[dict[str, Canonical], dict[str, str]]:
    """HubSpot's canonical values, one property at a time: a value that cannot be read (a URL
    typed into `domain`, an option WARP does not know) is kept as its raw text — it differs
    from any canonical value, so a WARP -> HubSpot field overwrites it — and reported."""
    values: dict[str, Canonical] = {}
    unreadable: dict[str, str] = {}
    for rule in rules:
        if not rule.enabled:
            continue
        raw = properties.get(rule.hubspot_property)
        try:
            values[rule.hubspot_property] = normalize_hubspot(rule, raw)
        except MappingError as exc:
            values[rule.hubspot_property] = str(raw).strip()
            unreadable[rule.hubspot_property] = exc.message
    return values, unreadable
