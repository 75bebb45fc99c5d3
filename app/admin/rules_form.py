"""The field rules as an HTML form and back: one row per rule plus an empty row to add one,
directions and authorities in words, and each value map as pairs of inputs (WARP value →
HubSpot value) rather than raw JSON. The parsed rows go through the same `rules_from_dicts`
as `PUT /v1/sync/config`, so the console shows the API's own messages."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from app.sync.core.rules import Authority, Direction, FieldRule, InvalidRuleError, ValueType
from app.sync.core.rules import rules_from_dicts as parse_rules

MAX_ROWS = 200
MAX_PAIRS = 100  # value-map pairs per rule
SPARE_PAIRS = 2  # empty pairs offered under each rule to add a mapping
TEXT_FIELDS = ("warp_field", "hubspot_property", "value_type", "direction", "authority")
DIRECTION_WORDS = {
    Direction.WARP_TO_HUBSPOT.value: "WARP → HubSpot",
    Direction.HUBSPOT_TO_WARP.value: "HubSpot → WARP",
    Direction.BIDIRECTIONAL.value: "both ways",
}
AUTHORITY_WORDS = {
    Authority.WARP.value: "WARP wins",
    Authority.HUBSPOT.value: "HubSpot wins",
    Authority.LATEST_WINS.value: "latest change wins",
    Authority.MANUAL.value: "a person decides",
    Authority.PREFER_WARP_UNLESS_BLANK.value: "WARP wins unless blank",
    Authority.PREFER_HUBSPOT_UNLESS_BLANK.value: "HubSpot wins unless blank",
}
# Each choice as (value posted, words shown).
CHOICES = {
    "value_type": [(member.value, member.value) for member in ValueType],
    "direction": [(member.value, DIRECTION_WORDS[member.value]) for member in Direction],
    "authority": [(member.value, AUTHORITY_WORDS[member.value]) for member in Authority],
}


def in_words(direction: str, authority: str) -> str:
    """ "WARP → HubSpot, WARP wins": how a rule reads to an operator."""
    return (
        f"{DIRECTION_WORDS.get(direction, direction)}, {AUTHORITY_WORDS.get(authority, authority)}"
    )


def _pairs(value_map: Mapping[str, str] | None) -> list[dict[str, str]]:
    pairs = [{"from": key, "to": value} for key, value in (value_map or {}).items()]
    return pairs + [{"from": "", "to": ""} for _ in range(SPARE_PAIRS)]


def rules_for_form(rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        {
            **rule,
            "transform": rule.get("transform") or "",
            "pairs": _pairs(rule.get("value_map")),
        }
        for rule in rules
    ]
    rows.append(
        {
            "warp_field": "",
            "hubspot_property": "",
            "value_type": "text",
            "direction": "WARP_TO_HUBSPOT",
            "authority": "WARP",
            "transform": "",
            "pairs": _pairs(None),
            "enabled": True,
        }
    )
    return rows


def rows_from_form(form: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows as typed (for showing the form again with an error). A value map comes as
    pairs `rules-N-map-M-from` / `-to`; a `rules-N-value_map` JSON text (a script's post)
    is still read."""
    rows = []
    for index in range(MAX_ROWS):
        prefix = f"rules-{index}-"
        if prefix + "warp_field" not in form:
            break
        row: dict[str, Any] = {
            name: str(form.get(prefix + name, "")).strip() for name in TEXT_FIELDS
        }
        row["transform"] = str(form.get(prefix + "transform", "")).strip()
        row["value_map"] = str(form.get(prefix + "value_map", "")).strip()
        pairs = []
        for number in range(MAX_PAIRS):
            source, target = f"{prefix}map-{number}-from", f"{prefix}map-{number}-to"
            if source not in form and target not in form:
                break
            pair = {"from": str(form.get(source, "")), "to": str(form.get(target, ""))}
            if pair["from"].strip() or pair["to"].strip():
                pairs.append(pair)
        row["pairs"] = pairs + [{"from": "", "to": ""} for _ in range(SPARE_PAIRS)]
        row["enabled"] = form.get(prefix + "enabled") == "on"
        row["delete"] = form.get(prefix + "delete") == "on"
        rows.append(row)
    return rows


def _value_map(row: Mapping[str, Any]) -> dict[str, str] | None:
    label = row["warp_field"] or "<rule>"
    if row.get("value_map"):
        try:
            parsed = json.loads(row["value_map"])
        except json.JSONDecodeError:
            raise InvalidRuleError(
                label, 'value_map must be a JSON object like {"PREPAID": "prepaid"}'
            ) from None
        return parsed  # type: ignore[no-any-return]  # parse_rules checks its shape
    mapped: dict[str, str] = {}
    for pair in row.get("pairs", []):
        source, target = pair["from"].strip(), pair["to"].strip()
        if not source and not target:
            continue
        if not source or not target:
            raise InvalidRuleError(
                label, f"value map row {source or target!r} needs both a WARP and a HubSpot value"
            )
        if source in mapped:
            raise InvalidRuleError(label, f"value map maps WARP value {source!r} twice")
        mapped[source] = target
    return mapped or None


def rules_from_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[FieldRule, ...]:
    """Validated rules; raises InvalidRuleError with the API's message. A row left blank
    (the spare one) or marked for deletion is dropped."""
    items = []
    for row in rows:
        if row.get("delete") or not any(row.get(name) for name in TEXT_FIELDS[:2]):
            continue
        item: dict[str, Any] = {name: row[name] for name in TEXT_FIELDS}
        item["transform"] = row["transform"] or None
        item["enabled"] = bool(row["enabled"])
        item["value_map"] = _value_map(row)
        items.append(item)
    if not items:
        raise InvalidRuleError("rules", 'expected {"rules": [ ... ]} with at least one rule')
    return parse_rules(items)
