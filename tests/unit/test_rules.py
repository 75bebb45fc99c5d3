"""The default field rules, their JSON form, and the rules hubsync refuses."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.sync.core.rules import (
    DEFAULT_RULES,
    Authority,
    Direction,
    FieldRule,
    InvalidRuleError,
    ValueType,
    rule_from_dict,
    rule_to_dict,
    rules_from_dicts,
    validate_rule,
    validate_rules,
)

W2H, BOTH = "WARP_TO_HUBSPOT", "BIDIRECTIONAL"

# MISSION.md's table, spelled as the JSON API spells it.
MISSION_TABLE = [
    ("ban", "warp_ban", "text", W2H, "WARP", None),
    ("company_name", "name", "text", BOTH, "LATEST_WINS", None),
    ("status", "warp_status", "text", W2H, "WARP", None),
    ("credit_limit", "warp_credit_limit", "decimal", BOTH, "HUBSPOT", None),
    ("current_balance", "warp_current_balance", "decimal", W2H, "WARP", None),
    ("customer_type", "warp_customer_type", "enumeration", W2H, "WARP", None),
    ("services.voice.enabled", "warp_services_voice", "boolean", W2H, "WARP", None),
    ("services.messaging.enabled", "warp_services_messaging", "boolean", W2H, "WARP", None),
    ("services.data.enabled", "warp_services_data", "boolean", W2H, "WARP", None),
    ("contact.email", "domain", "text", W2H, "WARP", "email_domain"),
]


def test_default_rules_match_the_mission_table() -> None:
    actual = [
        (r.warp_field, r.hubspot_property, r.value_type, r.direction, r.authority, r.transform)
        for r in DEFAULT_RULES
    ]
    assert actual == MISSION_TABLE
    assert all(rule.enabled for rule in DEFAULT_RULES)
    customer_type = DEFAULT_RULES[5]
    assert customer_type.value_map == {
        "PREPAID": "PREPAID",
        "POSTPAID": "POSTPAID",
        "RESELLER": "RESELLER",
    }


def test_default_rules_are_valid() -> None:
    validate_rules(DEFAULT_RULES)


@pytest.mark.parametrize("rule", DEFAULT_RULES, ids=lambda rule: rule.warp_field)
def test_json_round_trip(rule: FieldRule) -> None:
    assert rule_from_dict(rule_to_dict(rule)) == rule


def test_json_form_is_plain_strings() -> None:
    assert rule_to_dict(DEFAULT_RULES[-1]) == {
        "warp_field": "contact.email",
        "hubspot_property": "domain",
        "value_type": "text",
        "direction": "WARP_TO_HUBSPOT",
        "authority": "WARP",
        "transform": "email_domain",
        "value_map": None,
        "enabled": True,
    }


def test_parsing_is_lenient_on_case_and_ignores_table_columns() -> None:
    rule = rule_from_dict(
        {
            "warp_field": "status",
            "hubspot_property": "warp_status",
            "value_type": "TEXT",
            "direction": "warp_to_hubspot",
            "authority": "warp",
            "position": 3,
        }
    )
    assert rule == DEFAULT_RULES[2]


def _dict(**changes: Any) -> dict[str, Any]:
    return {**rule_to_dict(DEFAULT_RULES[1]), **changes}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(_dict(direction="SIDEWAYS"), "unknown direction 'SIDEWAYS'", id="direction"),
        pytest.param(_dict(authority="BOSS"), "unknown authority 'BOSS'", id="authority"),
        pytest.param(_dict(value_type="date"), "unknown value_type 'date'", id="value-type"),
        pytest.param(_dict(transform="upper"), "unknown transform 'upper'", id="transform"),
        pytest.param(_dict(colour="red"), "unknown key(s): colour", id="unknown-key"),
        pytest.param(_dict(enabled="yes"), "enabled must be true or false", id="enabled"),
        pytest.param(_dict(hubspot_property=""), "hubspot_property is required", id="no-prop"),
        pytest.param(_dict(value_map=["a"]), "value_map must map strings", id="map-type"),
    ],
)
def test_bad_json_is_refused_naming_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRuleError) as caught:
        rule_from_dict(data)
    assert str(caught.value).startswith("company_name: ")
    assert message in str(caught.value)
    assert caught.value.field == "company_name"


def _rule(**changes: Any) -> FieldRule:
    base = FieldRule("company_name", "name", ValueType.TEXT, Direction.BIDIRECTIONAL,
                     Authority.LATEST_WINS)  # fmt: skip
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        pytest.param(_rule(warp_field=""), "warp_field is empty", id="empty-path"),
        pytest.param(_rule(warp_field="contact..email"), "invalid path", id="empty-segment"),
        pytest.param(_rule(warp_field="contact.e-mail"), "invalid path", id="bad-segment"),
        pytest.param(_rule(warp_field="a.b.c.d.e"), "deeper than", id="too-deep"),
        pytest.param(_rule(warp_field="external_ids.x"), "reserved", id="reserved-column"),
        pytest.param(_rule(hubspot_property="Warp Name"), "invalid HubSpot property",
                     id="bad-property"),
        pytest.param(_rule(direction=Direction.WARP_TO_HUBSPOT, authority=Authority.HUBSPOT),
                     "contradicts direction", id="w2h-won-by-hubspot"),
        pytest.param(_rule(direction=Direction.HUBSPOT_TO_WARP, authority=Authority.WARP),
                     "contradicts direction", id="h2w-won-by-warp"),
        pytest.param(_rule(direction=Direction.WARP_TO_HUBSPOT, authority=Authority.MANUAL),
                     "contradicts direction", id="w2h-manual"),
        pytest.param(_rule(transform="email_domain"), "lossy", id="lossy-transform-both-ways"),
        pytest.param(_rule(transform="email_domain", value_type=ValueType.DECIMAL,
                           direction=Direction.WARP_TO_HUBSPOT, authority=Authority.WARP),
                     "does not apply to decimal", id="transform-type"),
        pytest.param(_rule(value_type=ValueType.ENUMERATION), "needs a non-empty value_map",
                     id="enum-without-map"),
        pytest.param(_rule(value_map={"A": "A"}), "only allowed for enumeration",
                     id="map-on-text"),
        pytest.param(_rule(value_type=ValueType.ENUMERATION, value_map={"A": "x", "B": "X"}),
                     "repeats HubSpot option(s): x", id="map-not-invertible"),
        pytest.param(_rule(value_type=ValueType.ENUMERATION, value_map={"A": " "}),
                     "invalid HubSpot option", id="map-blank-option"),
        pytest.param(_rule(direction="BOTH"), "unknown direction 'BOTH'", id="string-direction"),
    ],
)  # fmt: skip
def test_bad_rule_is_refused(rule: FieldRule, message: str) -> None:
    with pytest.raises(InvalidRuleError) as caught:
        validate_rule(rule)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "identity",
    [
        pytest.param(replace(DEFAULT_RULES[0], enabled=False), id="disabled"),
        pytest.param(replace(DEFAULT_RULES[0], direction=Direction.BIDIRECTIONAL), id="both"),
        pytest.param(replace(DEFAULT_RULES[0], hubspot_property="warp_id"), id="renamed"),
        pytest.param(replace(DEFAULT_RULES[2], hubspot_property="warp_ban"), id="other-field"),
    ],
)
def test_identity_rule_cannot_be_bent(identity: FieldRule) -> None:
    with pytest.raises(InvalidRuleError, match="identity rule must be exactly ban -> warp_ban"):
        validate_rule(identity)


def test_rule_set_without_identity_is_refused() -> None:
    with pytest.raises(InvalidRuleError, match=r"^ban: the identity rule .* is missing"):
        validate_rules(DEFAULT_RULES[1:])


@pytest.mark.parametrize(
    ("duplicate", "message"),
    [
        pytest.param(replace(DEFAULT_RULES[2], hubspot_property="warp_status2"),
                     "warp_field 'status' is used by more than one rule", id="warp-field"),
        pytest.param(replace(DEFAULT_RULES[2], warp_field="status2"),
                     "hubspot_property 'warp_status' is used by more than one rule",
                     id="hubspot-property"),
    ],
)  # fmt: skip
def test_duplicates_are_refused_even_when_disabled(duplicate: FieldRule, message: str) -> None:
    with pytest.raises(InvalidRuleError, match=message):
        validate_rules([*DEFAULT_RULES, replace(duplicate, enabled=False)])


def test_rules_from_dicts_validates_the_whole_set() -> None:
    items = [rule_to_dict(rule) for rule in DEFAULT_RULES]
    assert rules_from_dicts(items) == DEFAULT_RULES
    with pytest.raises(InvalidRuleError, match="used by more than one rule"):
        rules_from_dicts([*items, items[1]])
