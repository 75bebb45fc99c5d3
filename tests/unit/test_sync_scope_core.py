"""The pure sync scope and preview: what a condition admits (NULLs, numbers, booleans), how a
scope is parsed and checked against columns, and that the forecast decides like the engine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.sync.core.preview import RulesForecast, ScopeForecast, changed_rules
from app.sync.core.records import FieldMemory
from app.sync.core.rules import DEFAULT_RULES, Authority
from app.sync.core.scope import (
    EVERYONE,
    InvalidScopeError,
    check_scope_fits_columns,
    scope_from_dicts,
)

NOT_CLOSED = scope_from_dicts([{"column": "status", "op": "not_in", "values": ["CLOSED"]}])
TYPES = scope_from_dicts([{"column": "customer_type", "op": "in", "values": ["POSTPAID"]}])


@pytest.mark.parametrize(
    ("customer", "not_closed", "postpaid"),
    [
        ({"status": "ACTIVE", "customer_type": "POSTPAID"}, True, True),
        ({"status": "CLOSED", "customer_type": "POSTPAID"}, False, True),
        ({"status": None, "customer_type": None}, True, False),  # NULL: not in, never in
        ({"status": "closed", "customer_type": "postpaid"}, True, False),  # exact text
    ],
)
def test_what_a_condition_admits(
    customer: dict[str, object], not_closed: bool, postpaid: bool
) -> None:
    assert NOT_CLOSED.admits(customer) is not_closed
    assert TYPES.admits(customer) is postpaid
    assert EVERYONE.admits(customer)


def test_numbers_and_booleans_compare_as_their_text() -> None:
    scope = scope_from_dicts(
        [
            {"column": "credit_limit", "op": "in", "values": [0, "1000"]},
            {"column": "vip", "op": "in", "values": [True]},
        ]
    )
    assert scope.admits({"credit_limit": Decimal("1000"), "vip": True})
    assert not scope.admits({"credit_limit": Decimal("5"), "vip": True})
    assert not scope.admits({"credit_limit": 0, "vip": False})


def test_the_refusal_names_the_column_and_value() -> None:
    reason = NOT_CLOSED.refusal({"status": "CLOSED"})
    assert reason is not None
    assert "status is 'CLOSED'" in reason
    assert "status not in (CLOSED)" in reason
    assert NOT_CLOSED.refusal({"status": "ACTIVE"}) is None


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ({"column": "status"}, "conditions"),
        ([{"column": "", "op": "in", "values": ["x"]}], "conditions[0].column"),
        ([{"column": "status", "op": "=", "values": ["x"]}], "conditions[0].op"),
        ([{"column": "status", "op": "in", "values": "x"}], "conditions[0].values"),
        ([{"column": "status", "op": "in", "values": [None]}], "conditions[0].values"),
        ([{"column": "status", "op": "in", "values": [""]}], "conditions[0].values"),
        ([{"column": "status", "op": "in", "values": ["x"], "sql": "1=1"}], "conditions[0].sql"),
    ],
)
def test_malformed_scopes_name_the_part(items: object, field: str) -> None:
    with pytest.raises(InvalidScopeError) as refused:
        scope_from_dicts(items)
    assert refused.value.field == field


def test_columns_must_exist_and_compare() -> None:
    columns = {"status": "text", "contact": "json", "created_at": "other", "credit_limit": "number"}
    check_scope_fits_columns(NOT_CLOSED, columns)
    for column, phrase in (("colour", "no column"), ("contact", "cannot be compared")):
        scope = scope_from_dicts([{"column": column, "op": "in", "values": ["x"]}])
        with pytest.raises(InvalidScopeError, match=phrase):
            check_scope_fits_columns(scope, columns)


def test_a_scope_forecast_counts_who_enters_and_leaves() -> None:
    forecast = ScopeForecast(EVERYONE, NOT_CLOSED)
    forecast.add({"id": "a", "status": "CLOSED"}, linked=True)
    forecast.add({"id": "b", "status": "CLOSED"}, linked=False)
    forecast.add({"id": "c", "status": "ACTIVE"}, linked=True)
    assert forecast.to_json()["leaving"] == 2
    assert forecast.to_json()["leaving_with_company"] == 1
    back = ScopeForecast(NOT_CLOSED, EVERYONE)
    back.add({"id": "b", "status": "CLOSED"}, linked=False)
    assert (back.entering, back.entering_unlinked) == (1, 1)


def memory(warp: str, hubspot: str, base: str, prop: str = "warp_credit_limit") -> FieldMemory:
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    return FieldMemory(warp, hubspot, base, moment, moment, moment, prop)


def test_a_rules_forecast_counts_per_changed_field() -> None:
    before = list(DEFAULT_RULES)
    after = [
        replace(r, authority=Authority.MANUAL) if r.warp_field == "credit_limit" else r
        for r in before
    ]
    [(old, new)] = changed_rules(before, after)
    assert old is not None
    assert new is not None
    assert new.authority is Authority.MANUAL
    forecast = RulesForecast(before, after)
    both = {"credit_limit": memory("2000", "3000", "1000")}
    forecast.add({"id": "a", "credit_limit": Decimal("2000")}, both)  # both changed: conflict
    forecast.add({"id": "b", "credit_limit": Decimal("2000")}, both, {"credit_limit"})  # open
    forecast.add({"id": "c", "credit_limit": Decimal("1000")}, both)  # HubSpot only: to WARP
    forecast.add({"id": "d", "credit_limit": Decimal("3000")}, both)  # equal: nothing
    forecast.add({"id": "e", "credit_limit": Decimal("1000")}, {})  # never synced
    stale = {"credit_limit": memory("1", "2", "1", prop="another_property")}
    forecast.add({"id": "f", "credit_limit": Decimal("1")}, stale)  # re-pointed: unknown
    [field] = forecast.to_json(datetime(2026, 12, 2, tzinfo=UTC))["fields"]
    assert (field["conflicts"], field["conflicts_already_open"]) == (1, 1)
    assert (field["write_warp"], field["write_hubspot"]) == (1, 0)
    assert field["not_remembered"] == 2
    assert [e["customer_id"] for e in field["examples"]] == ["a", "c"]
    assert field["examples"][0]["decision"] == "CONFLICT"
    assert forecast.memory_age(datetime(2026, 12, 2, tzinfo=UTC))["oldest_age_seconds"] == 86400
