"""Every default rule of MISSION.md, in every situation a field can be in."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.sync.core.decision import NOT_READ, Action, HubSpotValue, decide_entity, decide_field
from app.sync.core.mapping import (
    Canonical,
    hubspot_properties,
    read_hubspot_values,
    read_warp_values,
)
from app.sync.core.rules import DEFAULT_RULES, Authority, Direction, FieldRule, ValueType

RULES = {rule.warp_field: rule for rule in DEFAULT_RULES}

# Three distinct canonical values per field: the base x, and changes y and z. Booleans have
# only two values, so their third is a blank.
SAMPLES: dict[str, tuple[str, str, str | None]] = {
    "ban": ("ZT-100", "ZT-200", "ZT-300"),
    "company_name": ("Acme", "Acme Corp", "Acme Inc"),
    "status": ("ACTIVE", "SUSPENDED", "CLOSED"),
    "credit_limit": ("10000", "15000", "20000"),
    "current_balance": ("12.5", "0", "-3.75"),
    "customer_type": ("PREPAID", "POSTPAID", "RESELLER"),
    "services.voice.enabled": ("true", "false", None),
    "services.messaging.enabled": ("true", "false", None),
    "services.data.enabled": ("false", "true", None),
    "contact.email": ("acme.com", "acme.io", "acme.org"),
}

EARLY = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LATE = EARLY + timedelta(minutes=5)

# situation -> (base, warp, hubspot, warp_changed_at, hubspot_changed_at), in terms of x, y, z.
SITUATIONS = {
    "in_sync": ("x", "x", "x", None, None),
    "changed_in_warp_only": ("x", "y", "x", LATE, None),
    "changed_in_hubspot_only": ("x", "x", "y", None, LATE),
    "both_changed_to_same": ("x", "y", "y", EARLY, LATE),
    "both_changed_hubspot_later": ("x", "y", "z", EARLY, LATE),
    "both_changed_warp_later": ("x", "y", "z", LATE, EARLY),
    "both_changed_same_time": ("x", "y", "z", EARLY, EARLY),
    "blanked_in_warp": ("x", None, "x", LATE, None),
    "blanked_in_hubspot": ("x", "x", None, None, LATE),
    "first_sync_both_set": (None, "y", "z", None, None),
    "first_sync_new_company": (None, "y", None, None, None),
    "first_sync_equal": (None, "y", "y", None, None),
    "hubspot_not_read_warp_changed": ("x", "y", NOT_READ, LATE, None),
    "hubspot_not_read_warp_unchanged": ("x", "x", NOT_READ, None, None),
}

# Expected (action, written value) for each class of default rule; "w"/"h" = that side's value.
WARP_OWNED = {
    "in_sync": (Action.NONE, None),
    "changed_in_warp_only": (Action.WRITE_HUBSPOT, "w"),
    "changed_in_hubspot_only": (Action.WRITE_HUBSPOT, "w"),  # HubSpot's edit written back
    "both_changed_to_same": (Action.NONE, None),
    "both_changed_hubspot_later": (Action.WRITE_HUBSPOT, "w"),
    "both_changed_warp_later": (Action.WRITE_HUBSPOT, "w"),
    "both_changed_same_time": (Action.WRITE_HUBSPOT, "w"),
    "blanked_in_warp": (Action.WRITE_HUBSPOT, "w"),  # clears HubSpot
    "blanked_in_hubspot": (Action.WRITE_HUBSPOT, "w"),
    "first_sync_both_set": (Action.WRITE_HUBSPOT, "w"),
    "first_sync_new_company": (Action.WRITE_HUBSPOT, "w"),
    "first_sync_equal": (Action.NONE, None),
    "hubspot_not_read_warp_changed": (Action.WRITE_HUBSPOT, "w"),
    "hubspot_not_read_warp_unchanged": (Action.NONE, None),
}
LATEST_WINS = {
    **WARP_OWNED,
    "changed_in_hubspot_only": (Action.WRITE_WARP, "h"),
    "both_changed_hubspot_later": (Action.WRITE_WARP, "h"),
    "blanked_in_hubspot": (Action.WRITE_WARP, "h"),
    "hubspot_not_read_warp_changed": (Action.NONE, None),
}
HUBSPOT_WINS = {
    **LATEST_WINS,
    "both_changed_warp_later": (Action.WRITE_WARP, "h"),
    "both_changed_same_time": (Action.WRITE_WARP, "h"),
    "first_sync_both_set": (Action.WRITE_WARP, "h"),
}
# A lossy transform's blank is "nothing to send": HubSpot's domain is kept, never cleared.
DOMAIN = {**WARP_OWNED, "blanked_in_warp": (Action.NONE, None)}
EXPECTED = {
    "company_name": LATEST_WINS,
    "credit_limit": HUBSPOT_WINS,
    "contact.email": DOMAIN,
    **{
        name: WARP_OWNED
        for name in SAMPLES
        if name not in ("company_name", "credit_limit", "contact.email")
    },
}


def _resolve(symbol: object, x: Canonical, y: Canonical, z: Canonical) -> HubSpotValue:
    if symbol is NOT_READ:
        return NOT_READ
    return {"x": x, "y": y, "z": z, None: None}[symbol]  # type: ignore[index]


CASES = [
    pytest.param(field, situation, id=f"{field}-{situation}")
    for field in SAMPLES
    for situation in SITUATIONS
]


@pytest.mark.parametrize(("field", "situation"), CASES)
def test_default_rule_in_situation(field: str, situation: str) -> None:
    rule = RULES[field]
    x, y, z = SAMPLES[field]
    base_s, warp_s, hubspot_s, warp_at, hubspot_at = SITUATIONS[situation]
    base = _resolve(base_s, x, y, z)
    warp = _resolve(warp_s, x, y, z)
    hubspot = _resolve(hubspot_s, x, y, z)
    assert base is not NOT_READ
    assert warp is not NOT_READ

    decision = decide_field(rule, warp, hubspot, base, warp_at, hubspot_at)

    action, written = EXPECTED[field][situation]
    assert decision.action is action, decision.reason
    assert decision.field == field
    assert decision.hubspot_property == rule.hubspot_property
    if action is Action.WRITE_HUBSPOT:
        assert decision.value == warp
        assert decision.new_base == warp
    elif action is Action.WRITE_WARP:
        assert decision.value == hubspot
        assert decision.new_base == hubspot
    else:
        assert decision.value is None
        expected_base = base if hubspot is NOT_READ or warp != hubspot else warp
        assert decision.new_base == expected_base
    assert written in ("w", "h", None)
    if rule.direction is Direction.WARP_TO_HUBSPOT:
        assert decision.action is not Action.WRITE_WARP
    assert decision.needs_hubspot == (
        hubspot is NOT_READ and action is Action.NONE and warp != base
    )


def test_every_default_rule_is_covered() -> None:
    assert set(SAMPLES) == set(RULES)


@pytest.mark.parametrize(
    ("warp", "hubspot", "base", "reason"),
    [
        pytest.param(
            "Acme Corp", "Acme", "Acme", "changed in WARP only: 'Acme' -> 'Acme Corp'", id="warp"
        ),
        pytest.param(
            "Acme", "ACME", "Acme", "changed in HubSpot only: 'Acme' -> 'ACME'", id="hubspot"
        ),
        pytest.param("Acme", "Acme", "Acme", "in sync: both sides hold 'Acme'", id="in-sync"),
        pytest.param(
            None, "Acme", "Acme", "changed in WARP only: 'Acme' -> blank", id="blanked-in-warp"
        ),
    ],
)
def test_reasons_read_as_sentences(
    warp: Canonical, hubspot: Canonical, base: Canonical, reason: str
) -> None:
    decision = decide_field(RULES["company_name"], warp, hubspot, base, None, None)
    assert decision.reason == reason


def test_hubspot_edit_of_warp_owned_field_is_written_back_with_a_reason() -> None:
    decision = decide_field(RULES["status"], "ACTIVE", "CLOSED", "ACTIVE", None, None)
    assert decision.action is Action.WRITE_HUBSPOT
    assert decision.value == "ACTIVE"
    assert "WARP -> HubSpot only" in decision.reason


def test_latest_wins_reason_names_the_tiebreak() -> None:
    decision = decide_field(RULES["company_name"], "A", "B", "C", EARLY, None)
    assert decision.action is Action.WRITE_HUBSPOT
    assert "tiebreak" in decision.reason


def test_latest_wins_compares_naive_times_as_utc() -> None:
    naive_later = (LATE + timedelta(hours=1)).replace(tzinfo=None)
    decision = decide_field(RULES["company_name"], "A", "B", "C", LATE, naive_later)
    assert decision.action is Action.WRITE_WARP
    assert decision.value == "B"


def test_manual_authority_leaves_a_conflict_and_keeps_the_base() -> None:
    rule = replace(RULES["company_name"], authority=Authority.MANUAL)
    decision = decide_field(rule, "Acme Corp", "Acme Inc", "Acme", EARLY, LATE)
    assert decision.action is Action.CONFLICT
    assert decision.new_base == "Acme"
    assert decision.value is None
    assert "a person decides" in decision.reason
    # A change on one side only is no conflict, even under MANUAL.
    one_sided = decide_field(rule, "Acme Corp", "Acme", "Acme", EARLY, None)
    assert one_sided.action is Action.WRITE_HUBSPOT


@pytest.mark.parametrize(
    ("authority", "warp", "hubspot", "action", "value"),
    [
        pytest.param(Authority.PREFER_WARP_UNLESS_BLANK, "A", "B", Action.WRITE_HUBSPOT, "A",
                     id="prefer-warp-both-set"),
        pytest.param(Authority.PREFER_WARP_UNLESS_BLANK, None, "B", Action.WRITE_WARP, "B",
                     id="prefer-warp-warp-blank"),
        pytest.param(Authority.PREFER_HUBSPOT_UNLESS_BLANK, "A", "B", Action.WRITE_WARP, "B",
                     id="prefer-hubspot-both-set"),
        pytest.param(Authority.PREFER_HUBSPOT_UNLESS_BLANK, "A", None, Action.WRITE_HUBSPOT, "A",
                     id="prefer-hubspot-hubspot-blank"),
    ],
)  # fmt: skip
def test_prefer_unless_blank_never_writes_a_blank(
    authority: Authority, warp: Canonical, hubspot: Canonical, action: Action, value: str
) -> None:
    rule = replace(RULES["company_name"], authority=authority)
    decision = decide_field(rule, warp, hubspot, "Old", EARLY, LATE)
    assert decision.action is action
    assert decision.value == value


def test_prefer_warp_on_one_way_field_keeps_hubspot_value_when_warp_is_blank() -> None:
    rule = replace(RULES["contact.email"], authority=Authority.PREFER_WARP_UNLESS_BLANK)
    # WARP's email became free-mail (domain None): HubSpot's domain is kept, not cleared.
    decision = decide_field(rule, None, "acme.com", "acme.com", LATE, None)
    assert decision.action is Action.NONE
    assert decision.new_base == "acme.com"
    assert "never writes a blank" in decision.reason


def _record() -> dict[str, object]:
    return {
        "id": "5d1c0f8e-0000-4000-8000-000000000001",
        "ban": "ZT-487392012",
        "company_name": " Acme Telecom ",
        "customer_type": "POSTPAID",
        "status": "ACTIVE",
        "credit_limit": "10000.00",
        "current_balance": "-12.50",
        "contact": json.dumps({"email": "Billing@Acme.com", "phone": "+1 555 0100"}),
        "services": {"voice": {"enabled": True}, "messaging": {"enabled": True},
                     "data": {"enabled": False}},
    }  # fmt: skip


def test_customer_synced_once_then_read_back_as_hubspot_strings_has_nothing_to_do() -> None:
    warp = read_warp_values(DEFAULT_RULES, _record())
    # The company does not exist yet: HubSpot was read and every property is blank.
    first = decide_entity(DEFAULT_RULES, warp, read_hubspot_values(DEFAULT_RULES, {}), {})
    assert first.hubspot_writes == {rule.hubspot_property: warp[rule.warp_field]
                                    for rule in DEFAULT_RULES}  # fmt: skip
    sent = hubspot_properties(DEFAULT_RULES, first.hubspot_writes)
    assert sent == {
        "warp_ban": "ZT-487392012",
        "name": "Acme Telecom",
        "warp_status": "ACTIVE",
        "warp_credit_limit": "10000",
        "warp_current_balance": "-12.5",
        "warp_customer_type": "POSTPAID",
        "warp_services_voice": "true",
        "warp_services_messaging": "true",
        "warp_services_data": "false",
        "domain": "acme.com",
    }
    # HubSpot echoes them back in its own spelling; nothing flaps.
    echoed = dict(sent, warp_credit_limit="10000.0", warp_current_balance="-12.50")
    again = decide_entity(
        DEFAULT_RULES, warp, read_hubspot_values(DEFAULT_RULES, echoed), first.new_bases
    )
    assert not again.has_writes
    assert not again.conflicts
    assert again.new_bases == first.new_bases


def test_sales_raising_the_credit_limit_in_hubspot_is_written_to_warp() -> None:
    warp = read_warp_values(DEFAULT_RULES, _record())
    bases = dict(warp)
    hubspot = {rule.hubspot_property: warp[rule.warp_field] for rule in DEFAULT_RULES}
    hubspot["warp_credit_limit"] = "25000"
    hubspot["warp_status"] = "CLOSED"  # a WARP-owned field edited in HubSpot
    decision = decide_entity(DEFAULT_RULES, warp, hubspot, bases)
    assert decision.warp_writes == {"credit_limit": "25000"}
    assert decision.hubspot_writes == {"warp_status": "ACTIVE"}
    assert decision.new_bases["credit_limit"] == "25000"
    assert [f.field for f in decision.fields] == [rule.warp_field for rule in DEFAULT_RULES]


def test_entity_skips_disabled_rules_and_collects_conflicts() -> None:
    rules = [
        DEFAULT_RULES[0],
        replace(RULES["company_name"], authority=Authority.MANUAL),
        replace(RULES["status"], enabled=False),
    ]
    decision = decide_entity(
        rules,
        {"ban": "ZT-1", "company_name": "A", "status": "ACTIVE"},
        {"warp_ban": "ZT-1", "name": "B", "warp_status": "CLOSED"},
        {"ban": "ZT-1", "company_name": "C", "status": "ACTIVE"},
    )
    assert [f.field for f in decision.fields] == ["ban", "company_name"]
    assert [c.field for c in decision.conflicts] == ["company_name"]
    assert decision.new_bases == {"ban": "ZT-1", "company_name": "C"}
    assert not decision.has_writes


def test_entity_without_hubspot_read_decides_warp_owned_fields_only() -> None:
    warp = {"ban": "ZT-1", "company_name": "Acme Corp", "status": "SUSPENDED"}
    bases = {"ban": "ZT-1", "company_name": "Acme", "status": "ACTIVE"}
    rules = [DEFAULT_RULES[0], RULES["company_name"], RULES["status"]]
    decision = decide_entity(rules, warp, {}, bases)
    assert decision.hubspot_writes == {"warp_status": "SUSPENDED"}
    assert decision.needs_hubspot_read
    undecided = [f.field for f in decision.fields if f.needs_hubspot]
    assert undecided == ["company_name"]
    assert decision.new_bases["company_name"] == "Acme"


def test_rule_with_hubspot_authority_on_value_type_decimal() -> None:
    rule = FieldRule("credit_limit", "warp_credit_limit", ValueType.DECIMAL,
                     Direction.BIDIRECTIONAL, Authority.HUBSPOT)  # fmt: skip
    assert decide_field(rule, "100", "200", "50", LATE, EARLY).value == "200"


def test_decide_entity_answers_field_by_field_as_decide_field() -> None:
    # decide_entity builds the unchanged fields' answers itself (the common case, without
    # decide_field's steps): every combination must come out as decide_field's own answer.
    values: list[str | None] = [None, "a", "b"]
    later = datetime(2026, 1, 2, tzinfo=UTC)
    earlier = datetime(2026, 1, 1, tzinfo=UTC)
    for rule in DEFAULT_RULES:
        for authority in Authority:
            for direction in Direction:
                varied = replace(rule, authority=authority, direction=direction)
                for w in values:
                    for b in values:
                        for h in [*values, NOT_READ]:
                            hubspot = {} if h is NOT_READ else {varied.hubspot_property: h}
                            decided = decide_entity(
                                [varied],
                                {varied.warp_field: w},
                                hubspot,
                                {varied.warp_field: b},
                                {varied.warp_field: earlier},
                                {varied.warp_field: later},
                            )
                            expected = decide_field(varied, w, h, b, earlier, later)
                            assert decided.fields == [expected], (varied, w, h, b)
                            assert decided.new_bases == {varied.warp_field: expected.new_base}
