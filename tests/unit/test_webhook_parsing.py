"""Reading a webhook delivery: shapes accepted, errors that name the event and field, dedup."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sync.core.events import (
    MAX_CLOCK_SKEW_SECONDS,
    DeliveryError,
    EventKind,
    IncomingEvent,
    bound_by_receipt,
    is_own_write,
    may_hold_unstorable_text,
    parse_delivery,
    parse_event,
)


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": 1,
        "subscriptionId": 7,
        "portalId": 62515,
        "appId": 1234,
        "occurredAt": 1_700_000_000_000,
        "subscriptionType": "company.propertyChange",
        "attemptNumber": 0,
        "objectId": 501,
        "propertyName": "name",
        "propertyValue": "Acme",
        "changeSource": "CRM_UI",
        "sourceId": "userId:42",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def parse(*events: Any) -> list[IncomingEvent]:
    return parse_delivery(json.dumps(list(events)).encode())


def test_a_property_change_is_read_with_its_fields() -> None:
    [parsed] = parse(event())
    assert parsed.kind is EventKind.PROPERTY_CHANGE
    assert parsed.object_id == "501"
    assert parsed.property_name == "name"
    assert parsed.property_value == "Acme"
    assert parsed.occurred_at.isoformat() == "2023-11-14T22:13:20+00:00"
    assert parsed.raw["portalId"] == 62515


def test_event_type_is_accepted_in_place_of_subscription_type() -> None:
    [parsed] = parse(event(subscriptionType=None, eventType="company.deletion"))
    assert parsed.kind is EventKind.DELETION


def test_unknown_types_parse_as_unsupported_rather_than_failing() -> None:
    [parsed] = parse(event(subscriptionType="contact.propertyChange"))
    assert parsed.kind is EventKind.UNSUPPORTED
    [assoc] = parse(event(subscriptionType="company.associationChange", propertyName=None))
    assert assoc.kind is EventKind.UNSUPPORTED


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"objectId": 1}', "expected a JSON array of events, got object"),
        (b"[1]", "event 0: expected an object, got number"),
        (json.dumps([event(), event(objectId=None)]).encode(), "event 1: objectId is required"),
        (json.dumps([event(occurredAt=None)]).encode(), "event 0: occurredAt is required"),
        (
            json.dumps([event(subscriptionType=None)]).encode(),
            "event 0: subscriptionType (or eventType) is required",
        ),
        (
            json.dumps([event(propertyName=None)]).encode(),
            "event 0: propertyName is required for company.propertyChange",
        ),
        (json.dumps([event(objectId="abc")]).encode(), "event 0: objectId must be a numeric id"),
        (json.dumps([event(occurredAt=1.5)]).encode(), "event 0: occurredAt must be an integer"),
        (
            json.dumps([event(subscriptionType="company.merge", mergedObjectIds=5)]).encode(),
            "event 0: mergedObjectIds must be an array",
        ),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_deliveries_say_what_and_where(body: bytes, message: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        parse_delivery(body)
    assert message in str(caught.value)


def test_dedup_key_ignores_event_id_and_attempt_but_not_content() -> None:
    first = parse(event())[0]
    retried = parse(event(eventId=99, attemptNumber=3))[0]
    other_value = parse(event(propertyValue="Acme Inc"))[0]
    later = parse(event(occurredAt=1_700_000_000_001))[0]
    as_string = parse(event(objectId="501"))[0]
    assert first.dedup_key == retried.dedup_key == as_string.dedup_key
    assert len({first.dedup_key, other_value.dedup_key, later.dedup_key}) == 3
    assert len(first.dedup_key) == 64


def test_merge_names_the_new_record_as_survivor_when_there_is_one() -> None:
    [with_new] = parse(
        event(
            subscriptionType="company.merge",
            propertyName=None,
            objectId=900,
            primaryObjectId=501,
            mergedObjectIds=[502],
            newObjectId=900,
        )
    )
    assert with_new.merge_ids() == ("900", ["501", "502"])
    [classic] = parse(
        event(
            subscriptionType="company.merge",
            propertyName=None,
            objectId=501,
            primaryObjectId=501,
            mergedObjectIds=[502, 503],
        )
    )
    assert classic.merge_ids() == ("501", ["502", "503"])
    assert classic.dedup_key != with_new.dedup_key


def test_own_writes_need_the_app_id_and_the_integration_source() -> None:
    [ours] = parse(event(changeSource="INTEGRATION", sourceId="1234"))
    [theirs] = parse(event(changeSource="INTEGRATION", sourceId="999"))
    [person] = parse(event(changeSource="CRM_UI", sourceId="1234"))
    assert is_own_write(ours, "1234")
    assert not is_own_write(theirs, "1234")
    assert not is_own_write(person, "1234")
    assert not is_own_write(ours, None)


def test_scalar_property_values_are_kept_as_text() -> None:
    [number] = parse(event(propertyValue=12))
    [flag] = parse(event(propertyValue=True))
    [cleared] = parse(event(propertyValue=None))
    assert (number.property_value, flag.property_value, cleared.property_value) == (
        "12",
        "true",
        None,
    )


# -- the hot path skips the per-value walk only when no string can need it ------------------

_TEXT = st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF))


@settings(max_examples=300, deadline=None)
@given(value=_TEXT, name=_TEXT, ensure_ascii=st.booleans())
def test_skipping_the_storable_walk_never_lets_unstorable_text_through(
    value: str, name: str, ensure_ascii: bool
) -> None:
    """Whatever the text (NUL, lone surrogates, any plane) and however it is encoded, parsing
    with the fast path gives what the full walk gives."""
    document = [event(propertyValue=value, propertyName=name or "name")]
    body = json.dumps(document, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    fast = parse_delivery(body)
    walked = [parse_event(0, item) for item in json.loads(body)]
    assert fast == walked


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'[{"propertyValue": "Ac\\u0000me"}]', "NUL"),
        (b'[{"propertyValue": "Acme \\ud800"}]', "surrogate"),
        (b'[{"propertyValue": "Acme \\uDBFF"}]', "surrogate"),
        ('[{"propertyValue": "Acme \ud800"}]'.encode("utf-8", "surrogatepass"), "surrogate"),
        ('[{"propertyValue": "Ac\\u0000me"}]'.encode("utf-16"), "NUL"),  # json.loads detects it
    ],
)
def test_every_way_unstorable_text_arrives_is_caught(body: bytes, problem: str) -> None:
    document = json.loads(body)
    document[0] = event(**document[0])
    assert may_hold_unstorable_text(body)
    encoded = json.dumps(document).encode(
        "utf-16" if body.startswith(b"\xff\xfe") else "utf-8", "surrogatepass"
    )
    (parsed,) = parse_delivery(encoded)
    assert parsed.problem is not None
    assert problem in parsed.problem


def test_plain_text_takes_the_fast_path() -> None:
    body = json.dumps([event(propertyValue="Zürich GmbH ✓ 東京 😀")], ensure_ascii=False).encode()
    assert not may_hold_unstorable_text(body)


def test_occurred_at_is_bounded_by_receipt_plus_the_skew() -> None:
    received = datetime(2026, 1, 1, tzinfo=UTC)
    edge = received + timedelta(seconds=MAX_CLOCK_SKEW_SECONDS)
    base = {"subscriptionType": "company.propertyChange", "objectId": 1, "propertyName": "name"}

    def at(moment: datetime) -> dict[str, object]:
        return {**base, "occurredAt": int(moment.timestamp() * 1000)}

    events = [parse_event(n, at(t)) for n, t in enumerate([edge, edge + timedelta(milliseconds=1)])]
    within, ahead = bound_by_receipt(events, received)
    assert within.problem is None
    assert within.storable_occurred_at == edge
    assert ahead.dated_ahead
    assert ahead.storable_occurred_at is None
    assert ahead.problem is not None
    assert f"{MAX_CLOCK_SKEW_SECONDS} s of clock skew" in ahead.problem
