"""Field rules: which WARP field maps to which HubSpot property, and who may change it.

A `FieldRule` mirrors one row of the `hubspot_sync_config` table. The rules are data, edited at
run time through `GET/PUT /v1/sync/config`; this module is where they are checked before they
are stored, so the decision engine only ever sees rules that make sense:

- the direction and the authority agree (a WARP -> HubSpot field cannot be won by HubSpot);
- a lossy transform (`email_domain`) only writes HubSpot;
- an enumeration has a value map whose options are distinct;
- no two rules share a WARP field or a HubSpot property;
- the identity rule `ban` -> `warp_ban` exists, is enabled, and flows WARP -> HubSpot only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeVar

from app.errors import HubsyncError

_E = TypeVar("_E", bound=StrEnum)


class Direction(StrEnum):
    WARP_TO_HUBSPOT = "WARP_TO_HUBSPOT"
    HUBSPOT_TO_WARP = "HUBSPOT_TO_WARP"
    BIDIRECTIONAL = "BIDIRECTIONAL"

    @property
    def writes_hubspot(self) -> bool:
        return self is not Direction.HUBSPOT_TO_WARP

    @property
    def writes_warp(self) -> bool:
        return self is not Direction.WARP_TO_HUBSPOT


class Authority(StrEnum):
    """Who wins when both sides changed a field to different values."""

    WARP = "WARP"
    HUBSPOT = "HUBSPOT"
    LATEST_WINS = "LATEST_WINS"
    MANUAL = "MANUAL"
    PREFER_WARP_UNLESS_BLANK = "PREFER_WARP_UNLESS_BLANK"
    PREFER_HUBSPOT_UNLESS_BLANK = "PREFER_HUBSPOT_UNLESS_BLANK"


class ValueType(StrEnum):
    TEXT = "text"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    ENUMERATION = "enumeration"


@dataclass(frozen=True, slots=True)
class FieldRule:
    warp_field: str
    hubspot_property: str
    value_type: ValueType
    direction: Direction
    authority: Authority
    transform: str | None = None
    # WARP value -> HubSpot option value, for enumerations only.
    value_map: dict[str, str] | None = None
    enabled: bool = True


class InvalidRuleError(HubsyncError, ValueError):
    """A rule (or a set of rules) that hubsync refuses to store or run."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


IDENTITY_WARP_FIELD: Final = "ban"
IDENTITY_HUBSPOT_PROPERTY: Final = "warp_ban"

# Transform name -> value types it accepts. Every transform is lossy (the WARP value cannot be
# rebuilt from the HubSpot one), so a transformed rule may only write HubSpot.
TRANSFORMS: Final[Mapping[str, frozenset[ValueType]]] = {
    "email_domain": frozenset({ValueType.TEXT}),
}

# Authorities each direction accepts: a one-way field is only ever won by its source.
ALLOWED_AUTHORITIES: Final[Mapping[Direction, frozenset[Authority]]] = {
    Direction.WARP_TO_HUBSPOT: frozenset({Authority.WARP, Authority.PREFER_WARP_UNLESS_BLANK}),
    Direction.HUBSPOT_TO_WARP: frozenset(
        {Authority.HUBSPOT, Authority.PREFER_HUBSPOT_UNLESS_BLANK}
    ),
    Direction.BIDIRECTIONAL: frozenset(Authority),
}

# Columns hubsync owns or WARP generates: no rule may read or write them.
RESERVED_WARP_COLUMNS: Final = frozenset({"id", "external_ids", "created_at", "updated_at"})

_PATH_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# HubSpot internal property names: lowercase, digits and underscores, starting with a letter.
_HUBSPOT_PROPERTY = re.compile(r"[a-z][a-z0-9_]{0,99}")
_MAX_PATH_DEPTH = 4

# A rule's fields, in the order of the `hubspot_sync_config` columns that hold them.
RULE_FIELDS: Final = (
    "warp_field",
    "hubspot_property",
    "value_type",
    "direction",
    "authority",
    "transform",
    "value_map",
    "enabled",
)
# Keys the config table carries beside the rule itself; accepted and ignored on input.
_IGNORED_KEYS: Final = frozenset({"position", "id", "updated_at", "updated_by"})


def _enum_value(enum: type[_E], raw: object, field: str, name: str) -> _E:
    if isinstance(raw, enum):
        return raw
    if isinstance(raw, str):
        for member in enum:
            if member.value.lower() == raw.strip().lower():
                return member
    allowed = ", ".join(member.value for member in enum)
    raise InvalidRuleError(field, f"unknown {name} {raw!r} (expected one of: {allowed})")


def rule_from_dict(data: Mapping[str, Any]) -> FieldRule:
    """Parse one rule as the JSON API and the config table spell it, then validate it."""
    field = data.get("warp_field")
    label = field if isinstance(field, str) and field else "<rule>"
    unknown = set(data) - set(RULE_FIELDS) - _IGNORED_KEYS
    if unknown:
        raise InvalidRuleError(label, f"unknown key(s): {', '.join(sorted(unknown))}")
    for key in ("warp_field", "hubspot_property", "value_type", "direction", "authority"):
        if data.get(key) in (None, ""):
            raise InvalidRuleError(label, f"{key} is required")
    if not isinstance(field, str):
        raise InvalidRuleError(label, "warp_field must be a string")
    prop = data["hubspot_property"]
    if not isinstance(prop, str):
        raise InvalidRuleError(label, "hubspot_property must be a string")
    transform = data.get("transform")
    if transform is not None and not isinstance(transform, str):
        raise InvalidRuleError(label, "transform must be a string or null")
    value_map = data.get("value_map")
    if value_map is not None:
        if not isinstance(value_map, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value_map.items()
        ):
            raise InvalidRuleError(label, "value_map must map strings to strings")
        value_map = dict(value_map)
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidRuleError(label, f"enabled must be true or false, not {enabled!r}")
    rule = FieldRule(
        warp_field=field,
        hubspot_property=prop,
        value_type=_enum_value(ValueType, data["value_type"], label, "value_type"),
        direction=_enum_value(Direction, data["direction"], label, "direction"),
        authority=_enum_value(Authority, data["authority"], label, "authority"),
        transform=transform or None,
        value_map=value_map,
        enabled=enabled,
    )
    validate_rule(rule)
    return rule


def rule_to_dict(rule: FieldRule) -> dict[str, Any]:
    return {
        "warp_field": rule.warp_field,
        "hubspot_property": rule.hubspot_property,
        "value_type": rule.value_type.value,
        "direction": rule.direction.value,
        "authority": rule.authority.value,
        "transform": rule.transform,
        "value_map": dict(rule.value_map) if rule.value_map is not None else None,
        "enabled": rule.enabled,
    }


def rules_from_dicts(items: Iterable[Mapping[str, Any]]) -> tuple[FieldRule, ...]:
    """Parse and validate a whole rule set (the body of `PUT /v1/sync/config`)."""
    rules = tuple(rule_from_dict(item) for item in items)
    validate_rules(rules)
    return rules


def validate_rule(rule: FieldRule) -> None:
    """Raise `InvalidRuleError` naming the field and what is wrong with this one rule."""
    field = rule.warp_field if isinstance(rule.warp_field, str) and rule.warp_field else "<rule>"
    _check_path(field, rule.warp_field)
    if not isinstance(rule.hubspot_property, str) or not _HUBSPOT_PROPERTY.fullmatch(
        rule.hubspot_property
    ):
        raise InvalidRuleError(
            field,
            f"invalid HubSpot property name {rule.hubspot_property!r} (lowercase letters, "
            "digits and underscores, starting with a letter, at most 100 characters)",
        )
    # Rules built in code bypass rule_from_dict's parsing; a bare string would compare equal
    # to an enum member yet lack its behaviour, so insist on the real types.
    for enum, value, name in (
        (ValueType, rule.value_type, "value_type"),
        (Direction, rule.direction, "direction"),
        (Authority, rule.authority, "authority"),
    ):
        if not isinstance(value, enum):
            allowed = ", ".join(member.value for member in enum)
            raise InvalidRuleError(field, f"unknown {name} {value!r} (expected one of: {allowed})")
    if not isinstance(rule.enabled, bool):
        raise InvalidRuleError(field, "enabled must be a boolean")
    if rule.authority not in ALLOWED_AUTHORITIES[rule.direction]:
        allowed = ", ".join(sorted(ALLOWED_AUTHORITIES[rule.direction]))
        raise InvalidRuleError(
            field,
            f"authority {rule.authority} contradicts direction {rule.direction} "
            f"(allowed: {allowed})",
        )
    _check_transform(field, rule)
    _check_value_map(field, rule)
    _check_identity(field, rule)


def _check_path(field: str, path: object) -> None:
    if not isinstance(path, str) or not path:
        raise InvalidRuleError(field, "warp_field is empty")
    segments = path.split(".")
    if len(segments) > _MAX_PATH_DEPTH:
        raise InvalidRuleError(field, f"path {path!r} is deeper than {_MAX_PATH_DEPTH} segments")
    for segment in segments:
        if not _PATH_SEGMENT.fullmatch(segment):
            raise InvalidRuleError(
                field,
                f"invalid path {path!r}: segment {segment!r} must be letters, digits and "
                "underscores, not starting with a digit",
            )
    if segments[0] in RESERVED_WARP_COLUMNS:
        raise InvalidRuleError(field, f"column {segments[0]!r} is reserved and cannot be synced")


def _check_transform(field: str, rule: FieldRule) -> None:
    if rule.transform is None:
        return
    types = TRANSFORMS.get(rule.transform)
    if types is None:
        known = ", ".join(sorted(TRANSFORMS))
        raise InvalidRuleError(field, f"unknown transform {rule.transform!r} (known: {known})")
    if rule.value_type not in types:
        raise InvalidRuleError(
            field, f"transform {rule.transform!r} does not apply to {rule.value_type} values"
        )
    if rule.direction is not Direction.WARP_TO_HUBSPOT:
        raise InvalidRuleError(
            field,
            f"transform {rule.transform!r} is lossy, so it can only write HubSpot: "
            f"direction must be {Direction.WARP_TO_HUBSPOT}, not {rule.direction}",
        )


def _check_value_map(field: str, rule: FieldRule) -> None:
    if rule.value_type is not ValueType.ENUMERATION:
        if rule.value_map is not None:
            raise InvalidRuleError(field, "value_map is only allowed for enumeration fields")
        return
    if not rule.value_map:
        raise InvalidRuleError(field, "an enumeration needs a non-empty value_map")
    for key, value in rule.value_map.items():
        for side, option in (("WARP", key), ("HubSpot", value)):
            if not isinstance(option, str) or not option.strip() or option != option.strip():
                raise InvalidRuleError(
                    field,
                    f"value_map has an invalid {side} option {option!r} "
                    "(non-blank, no surrounding spaces)",
                )
    # Mapping back from HubSpot needs the options to be distinct, case aside.
    for side, options in (("WARP", rule.value_map.keys()), ("HubSpot", rule.value_map.values())):
        counts = Counter(option.casefold() for option in options)
        duplicates = sorted(option for option, count in counts.items() if count > 1)
        if duplicates:
            raise InvalidRuleError(
                field, f"value_map repeats {side} option(s): {', '.join(duplicates)}"
            )


def _check_identity(field: str, rule: FieldRule) -> None:
    is_identity = (
        rule.warp_field == IDENTITY_WARP_FIELD or rule.hubspot_property == IDENTITY_HUBSPOT_PROPERTY
    )
    if not is_identity:
        return
    expected = FieldRule(
        IDENTITY_WARP_FIELD,
        IDENTITY_HUBSPOT_PROPERTY,
        ValueType.TEXT,
        Direction.WARP_TO_HUBSPOT,
        Authority.WARP,
    )
    if rule != expected:
        raise InvalidRuleError(
            field,
            "the identity rule must be exactly ban -> warp_ban, text, "
            "WARP_TO_HUBSPOT, authority WARP, no transform, enabled",
        )


def validate_rules(rules: Iterable[FieldRule]) -> None:
    """Validate each rule, then the set: no duplicates, and the identity rule present."""
    rules = tuple(rules)
    for rule in rules:
        validate_rule(rule)
    for attribute in ("warp_field", "hubspot_property"):
        seen: set[str] = set()
        for rule in rules:
            value = getattr(rule, attribute)
            if value in seen:
                raise InvalidRuleError(
                    rule.warp_field, f"{attribute} {value!r} is used by more than one rule"
                )
            seen.add(value)
    if not any(rule.warp_field == IDENTITY_WARP_FIELD for rule in rules):
        raise InvalidRuleError(IDENTITY_WARP_FIELD, "the identity rule ban -> warp_ban is missing")


def _warp_to_hubspot(field: str, prop: str, value_type: ValueType = ValueType.TEXT) -> FieldRule:
    return FieldRule(field, prop, value_type, Direction.WARP_TO_HUBSPOT, Authority.WARP)


# MISSION.md's default field rules, in the order the config table seeds them.
DEFAULT_RULES: Final[tuple[FieldRule, ...]] = (
    _warp_to_hubspot("ban", "warp_ban"),
    FieldRule(
        "company_name", "name", ValueType.TEXT, Direction.BIDIRECTIONAL, Authority.LATEST_WINS
    ),
    _warp_to_hubspot("status", "warp_status"),
    FieldRule(
        "credit_limit",
        "warp_credit_limit",
        ValueType.DECIMAL,
        Direction.BIDIRECTIONAL,
        Authority.HUBSPOT,
    ),
    _warp_to_hubspot("current_balance", "warp_current_balance", ValueType.DECIMAL),
    FieldRule(
        "customer_type",
        "warp_customer_type",
        ValueType.ENUMERATION,
        Direction.WARP_TO_HUBSPOT,
        Authority.WARP,
        value_map={"PREPAID": "PREPAID", "POSTPAID": "POSTPAID", "RESELLER": "RESELLER"},
    ),
    _warp_to_hubspot("services.voice.enabled", "warp_services_voice", ValueType.BOOLEAN),
    _warp_to_hubspot("services.messaging.enabled", "warp_services_messaging", ValueType.BOOLEAN),
    _warp_to_hubspot("services.data.enabled", "warp_services_data", ValueType.BOOLEAN),
    FieldRule(
        "contact.email",
        "domain",
        ValueType.TEXT,
        Direction.WARP_TO_HUBSPOT,
        Authority.WARP,
        transform="email_domain",
    ),
)
