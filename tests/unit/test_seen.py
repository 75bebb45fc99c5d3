"""`app.sync.core.seen`: the catch-up's "hubsync knows this already" is a comparison of each
enabled field's value with the one hubsync last saw on that side — never a time."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from app.sync.core.mapping import get_path, normalize, normalize_hubspot, to_hubspot
from app.sync.core.records import FieldMemory
from app.sync.core.rules import DEFAULT_RULES
from app.sync.core.seen import hubspot_seen, warp_seen

RULES = tuple(rule for rule in DEFAULT_RULES if rule.enabled)
CUSTOMER: dict[str, Any] = {
    "id": "c-1",
    "ban": "ZT-100000001",
    "company_name": "Customer 1 Ltd",
    "customer_type": "POSTPAID",
    "status": "ACTIVE",
    "credit_limit": Decimal("1000"),
    "current_balance": Decimal("12.50"),
    "contact": {"email": "billing@customer1.example"},
    "services": {"voice": {"enabled": True}, "messaging": {"enabled": False}},
}


def remembered(record: dict[str, Any]) -> dict[str, FieldMemory]:
    """What a sync of `record` leaves in hubsync's memory, on both sides."""
    memory = {}
    for rule in RULES:
        value = normalize(rule, get_path(record, rule.warp_field))
        memory[rule.warp_field] = FieldMemory(
            value, value, value, None, None, None, rule.hubspot_property
        )
    return memory


def properties(record: dict[str, Any]) -> dict[str, str | None]:
    """The company as HubSpot holds it after hubsync wrote `record`."""

    return {
        rule.hubspot_property: to_hubspot(rule, get_path(record, rule.warp_field)) for rule in RULES
    }


def test_what_a_sync_left_is_seen_on_both_sides() -> None:
    memory = remembered(CUSTOMER)
    assert warp_seen(RULES, memory, CUSTOMER)
    assert hubspot_seen(RULES, memory, properties(CUSTOMER))


def test_any_field_changed_is_news() -> None:
    memory = remembered(CUSTOMER)
    assert not warp_seen(RULES, memory, {**CUSTOMER, "status": "SUSPENDED"})
    edited = {**properties(CUSTOMER), "warp_credit_limit": "9000"}
    assert not hubspot_seen(RULES, memory, edited)


def test_hubspot_formatting_is_not_news() -> None:
    memory = remembered(CUSTOMER)
    [rule] = [r for r in RULES if r.hubspot_property == "warp_credit_limit"]
    assert normalize_hubspot(rule, "1000.00") == normalize_hubspot(rule, "1000")
    assert hubspot_seen(RULES, memory, {**properties(CUSTOMER), "warp_credit_limit": "1000.00"})


def test_nothing_remembered_is_news_unless_blank() -> None:
    assert not warp_seen(RULES, {}, CUSTOMER)
    assert hubspot_seen(RULES, {}, {})  # a blank company with nothing known: nothing to say


def test_memory_of_another_property_is_not_knowledge() -> None:
    memory = remembered(CUSTOMER)
    [rule] = [r for r in RULES if r.warp_field == "credit_limit"]
    moved = replace(rule, hubspot_property="another_credit_limit")
    rules = tuple(moved if r is rule else r for r in RULES)
    assert not warp_seen(rules, memory, CUSTOMER)


def test_an_unreadable_value_is_news() -> None:
    memory = remembered(CUSTOMER)
    assert not hubspot_seen(RULES, memory, {**properties(CUSTOMER), "warp_credit_limit": "lots"})
