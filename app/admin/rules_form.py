"""The field rules as an HTML form and back: one row per rule plus an empty row to add one.
The parsed rows go through the same `rules_from_dicts` as `PUT /v1/sync/config`, so the
console shows the API's own messages."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from app.sync.core.rules import Authority, Direction, FieldRule, InvalidRuleError, ValueType
from app.sync.core.rules import rules_from_dicts as parse_rules

MAX_ROWS = 200
TEXT_FIELDS = ("warp_field", "hubspot_property", "value_type", "direction", "authority")
CHOICES = {
    "value_type": [member.value for member in ValueType],
    "direction": [member.value for member in Direction],
    "authority": [member.value for member in Authority],
}


def rules_for_form(rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        {
            **rule,
            "transform": rule.get("transform") or "",
            "value_map": json.dumps(rule["value_map"]) if rule.get("value_map") else "",
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
            "value_map": "",
            "enabled": True,
        }
    )
    return rows


def rows_from_form(form: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows as typed (for showing the form again with an error)."""
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
        row["enabled"] = form.get(prefix + "enabled") == "on"
        row["delete"] = form.get(prefix + "delete") == "on"
        rows.append(row)
    return rows


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
        item["value_map"] = None
        if row["value_map"]:
            label = row["warp_field"] or "<rule>"
            try:
                item["value_map"] = json.loads(row["value_map"])
            except json.JSONDecodeError:
                raise InvalidRuleError(
                    label, 'value_map must be a JSON object like {"PREPAID": "prepaid"}'
                ) from None
        items.append(item)
    if not items:
        raise InvalidRuleError("rules", 'expected {"rules": [ ... ]} with at least one rule')
    return parse_rules(items)
