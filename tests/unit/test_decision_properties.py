"""Properties of the per-field decision over random rules, values, bases and change times."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.sync.core.decision import (
    NOT_READ,
    Action,
    FieldDecision,
    decide_entity,
    decide_field,
    unread_needs_hubspot,
)
from app.sync.core.mapping import Canonical
from app.sync.core.rules import Authority, Direction, FieldRule, ValueType

PREFER = {Authority.PREFER_WARP_UNLESS_BLANK, Authority.PREFER_HUBSPOT_UNLESS_BLANK}

# Few values, so that equal sides and equal bases come up often.
values = st.sampled_from([None, "a", "b", "c"])
T0 = datetime(2025, 1, 1, tzinfo=UTC)
times = st.one_of(st.none(), st.integers(0, 3).map(lambda m: T0 + timedelta(minutes=m)))


@st.composite
def rules(draw: st.DrawFn, name: str = "f") -> FieldRule:
    # Every combination, valid or not: the decision must be safe even for a rule that
    # validation would refuse.
    return FieldRule(
        warp_field=name,
        hubspot_property=f"p_{name}",
        value_type=draw(st.sampled_from(ValueType)),
        direction=draw(st.sampled_from(Direction)),
        authority=draw(st.sampled_from(Authority)),
    )


Inputs = tuple[FieldRule, Canonical, Canonical, Canonical, datetime | None, datetime | None]
inputs = st.tuples(rules(), values, values, values, times, times)


def _apply(
    decision: FieldDecision, warp: Canonical, hubspot: Canonical
) -> tuple[Canonical, Canonical]:
    if decision.action is Action.WRITE_HUBSPOT:
        return warp, decision.value
    if decision.action is Action.WRITE_WARP:
        return decision.value, hubspot
    return warp, hubspot


@given(inputs)
def test_same_inputs_give_the_same_decision(case: Inputs) -> None:
    assert decide_field(*case) == decide_field(*case)


@given(inputs)
def test_the_read_question_is_what_an_unread_decision_answers(case: Inputs) -> None:
    # The engine asks whether to read HubSpot without deciding, then decides once: the
    # question must answer what deciding unread would have said.
    rule, warp, _, base, warp_at, hubspot_at = case
    unread = decide_field(rule, warp, NOT_READ, base, warp_at, hubspot_at)
    assert unread_needs_hubspot(rule, warp, base) is unread.needs_hubspot


@given(inputs)
def test_deciding_again_after_applying_has_nothing_to_do(case: Inputs) -> None:
    rule, warp, hubspot, _, warp_at, hubspot_at = case
    first = decide_field(*case)
    warp2, hubspot2 = _apply(first, warp, hubspot)
    second = decide_field(rule, warp2, hubspot2, first.new_base, warp_at, hubspot_at)
    if first.action is Action.CONFLICT:
        assert second.action is Action.CONFLICT
    else:
        assert second.action is Action.NONE, second.reason
    assert second.new_base == first.new_base


@given(inputs)
def test_after_applying_both_sides_agree_unless_a_person_or_a_blank_rule_stops_it(
    case: Inputs,
) -> None:
    rule, warp, hubspot, _, _, _ = case
    decision = decide_field(*case)
    warp2, hubspot2 = _apply(decision, warp, hubspot)
    if warp2 == hubspot2:
        assert decision.new_base == warp2
        return
    # The only ways to stay apart: a MANUAL conflict, or "prefer X unless blank" on a one-way
    # field whose source is blank, where HubSpot/WARP keeps its value rather than take a blank.
    if decision.action is Action.CONFLICT:
        assert rule.authority is Authority.MANUAL
        assert rule.direction is Direction.BIDIRECTIONAL
        return
    assert decision.action is Action.NONE
    assert rule.authority in PREFER
    if rule.direction is Direction.WARP_TO_HUBSPOT:
        assert warp2 is None
        assert hubspot2 is not None
    else:
        assert rule.direction is Direction.HUBSPOT_TO_WARP
        assert hubspot2 is None
        assert warp2 is not None


@given(rules(), values, times, times)
def test_a_value_hubsync_wrote_coming_back_is_not_written_again(
    rule: FieldRule, value: Canonical, warp_at: datetime | None, hubspot_at: datetime | None
) -> None:
    decision = decide_field(rule, value, value, value, warp_at, hubspot_at)
    assert decision.action is Action.NONE
    assert decision.new_base == value


@given(inputs)
def test_direction_is_never_violated(case: Inputs) -> None:
    rule = case[0]
    decision = decide_field(*case)
    if rule.direction is Direction.WARP_TO_HUBSPOT:
        assert decision.action is not Action.WRITE_WARP
    if rule.direction is Direction.HUBSPOT_TO_WARP:
        assert decision.action is not Action.WRITE_HUBSPOT


@given(inputs)
def test_writes_carry_the_winning_side_value_and_never_a_no_op(case: Inputs) -> None:
    _, warp, hubspot, _, _, _ = case
    decision = decide_field(*case)
    if decision.action is Action.WRITE_HUBSPOT:
        assert decision.value == warp != hubspot
    elif decision.action is Action.WRITE_WARP:
        assert decision.value == hubspot != warp
    else:
        assert decision.value is None


@given(inputs)
def test_prefer_unless_blank_never_writes_a_blank_over_a_value(case: Inputs) -> None:
    rule = case[0]
    decision = decide_field(*case)
    if rule.authority in PREFER and decision.action in (Action.WRITE_HUBSPOT, Action.WRITE_WARP):
        assert decision.value is not None


@given(inputs)
def test_a_change_on_one_side_wins_where_the_direction_allows(case: Inputs) -> None:
    rule, warp, hubspot, base, _, _ = case
    decision = decide_field(*case)
    # Under "prefer X unless blank" a blank never wins; every other one-sided change does.
    blank_guard = rule.authority in PREFER
    warp_only = warp != base and hubspot == base and not (blank_guard and warp is None)
    hubspot_only = hubspot != base and warp == base and not (blank_guard and hubspot is None)
    if warp_only and rule.direction.writes_hubspot:
        assert decision.action is Action.WRITE_HUBSPOT
        assert decision.value == warp
    if hubspot_only and rule.direction.writes_warp:
        assert decision.action is Action.WRITE_WARP
        assert decision.value == hubspot


@given(inputs)
def test_latest_wins_goes_to_the_later_change(case: Inputs) -> None:
    drawn, warp, hubspot, base, warp_at, hubspot_at = case
    rule = replace(drawn, direction=Direction.BIDIRECTIONAL, authority=Authority.LATEST_WINS)
    if len({warp, hubspot, base}) < 3:
        return  # not a change on both sides to different values
    decision = decide_field(rule, warp, hubspot, base, warp_at, hubspot_at)
    hubspot_later = warp_at is not None and hubspot_at is not None and hubspot_at > warp_at
    assert decision.action is (Action.WRITE_WARP if hubspot_later else Action.WRITE_HUBSPOT)


@given(inputs)
def test_without_reading_hubspot_the_decision_agrees_with_the_full_one(case: Inputs) -> None:
    rule, warp, _, base, warp_at, hubspot_at = case
    unread = decide_field(rule, warp, NOT_READ, base, warp_at, hubspot_at)
    assert unread.action in (Action.NONE, Action.WRITE_HUBSPOT)
    if unread.needs_hubspot:
        assert unread.action is Action.NONE
        assert warp != base
        return
    for hubspot in (None, "a", "b", "c"):
        full = decide_field(rule, warp, hubspot, base, warp_at, hubspot_at)
        if unread.action is Action.WRITE_HUBSPOT:
            # Whatever HubSpot held, the full decision ends with WARP's value on both sides.
            assert _apply(full, warp, hubspot) == (warp, warp)
        elif warp == base and hubspot == base:
            assert full.action is Action.NONE
        elif warp != base:
            assert full.action is Action.NONE  # prefer-WARP with a blank WARP: keep HubSpot


@given(st.lists(st.tuples(rules(), values, values, values), min_size=1, max_size=5))
def test_entity_decision_is_the_field_decisions_put_together(
    fields: list[tuple[FieldRule, Canonical, Canonical, Canonical]],
) -> None:
    rules_ = [
        FieldRule(f"f{i}", f"p{i}", r.value_type, r.direction, r.authority)
        for i, (r, _, _, _) in enumerate(fields)
    ]
    warp = {rule.warp_field: w for rule, (_, w, _, _) in zip(rules_, fields, strict=True)}
    hubspot = {rule.hubspot_property: h for rule, (_, _, h, _) in zip(rules_, fields, strict=True)}
    bases = {rule.warp_field: b for rule, (_, _, _, b) in zip(rules_, fields, strict=True)}
    entity = decide_entity(rules_, warp, hubspot, bases)
    assert len(entity.fields) == len(rules_)
    for rule, decision in zip(rules_, entity.fields, strict=True):
        assert decision == decide_field(
            rule, warp[rule.warp_field], hubspot[rule.hubspot_property], bases[rule.warp_field]
        )
        assert entity.new_bases[rule.warp_field] == decision.new_base
        in_hubspot_writes = rule.hubspot_property in entity.hubspot_writes
        assert in_hubspot_writes == (decision.action is Action.WRITE_HUBSPOT)
        assert (rule.warp_field in entity.warp_writes) == (decision.action is Action.WRITE_WARP)
        assert (decision in entity.conflicts) == (decision.action is Action.CONFLICT)
