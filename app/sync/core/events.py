"""Reading a HubSpot webhook delivery: parse, validate, fingerprint and classify its events.

Pure functions over the verified raw body; the transaction that stores the events and queues
their work is `app/sync/intake/routing.py`. A delivery is a JSON array of events; HubSpot's
`eventId` is not unique and the same event arrives more than once (with a new `attemptNumber`),
so each event is fingerprinted by its content instead (`dedup_key`).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.errors import HubsyncError
from app.sync.core.json_input import JsonInputError, parse_json

OWN_WRITE_REASON = "our own write"
# HubSpot ids are 64-bit integers; the id columns hold 64 characters. A longer "id" is refused
# here (400) rather than failing the insert (which would be a 503 HubSpot retries forever).
MAX_ID_DIGITS = 64
INTEGRATION_SOURCE = "INTEGRATION"
# What the database can hold. An event outside these is stored (made storable) and marked
# failed with the reason, never allowed to fail the insert of the whole delivery.
MAX_OCCURRED_AT_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last datetime
MAX_ATTEMPT_NUMBER = 2**31 - 1  # an INTEGER column
# HubSpot merges two records at a time; a merge naming more ids than this is not a real one.
MAX_MERGED_IDS = 100
# How far ahead of its receipt an event's `occurredAt` may be (HubSpot's clock against
# ours). An event dated later is not trusted as the time of anything: taken at its word, it
# would be the newest edit of its property for years and beat every real edit meanwhile.
# Five minutes is far past what NTP-synced clocks disagree by, and far short of any harm.
MAX_CLOCK_SKEW_SECONDS = 300


class DeliveryError(HubsyncError, ValueError):
    """The body is not a delivery hubsync can store; the message says what is wrong, where."""


class EventKind(enum.Enum):
    CREATION = "creation"
    PROPERTY_CHANGE = "propertyChange"
    DELETION = "deletion"
    RESTORE = "restore"
    MERGE = "merge"
    UNSUPPORTED = "unsupported"  # stored and ignored, never refused


_COMPANY_KINDS = {
    f"company.{kind.value}": kind for kind in EventKind if kind.value != "unsupported"
}


@dataclass(frozen=True)
class IncomingEvent:
    """One event of a delivery, with the fields hubsync acts on pulled out of `raw`."""

    subscription_type: str
    object_id: str
    occurred_at_ms: int
    raw: dict[str, Any]
    event_id: int | None = None
    attempt_number: int | None = None
    property_name: str | None = None
    property_value: str | None = None
    change_source: str | None = None
    source_id: str | None = None
    primary_object_id: str | None = None
    merged_object_ids: tuple[str, ...] = field(default=())
    new_object_id: str | None = None
    # Why hubsync cannot act on this event (stored, then marked failed); None when it can.
    problem: str | None = None
    # `occurredAt` is later than the receipt allows (`bound_by_receipt`): stored without a
    # time, so no ordering or change-time query ever reads it as HubSpot's.
    dated_ahead: bool = False

    @property
    def kind(self) -> EventKind:
        return _COMPANY_KINDS.get(self.subscription_type, EventKind.UNSUPPORTED)

    @property
    def occurred_at(self) -> datetime:
        # Clamped so that an out-of-range time (an event with a `problem`) cannot raise.
        moment = min(max(self.occurred_at_ms, 0), MAX_OCCURRED_AT_MS)
        return datetime.fromtimestamp(moment / 1000, UTC)

    @property
    def storable_occurred_at(self) -> datetime | None:
        if self.dated_ahead:
            return None
        return self.occurred_at if 0 <= self.occurred_at_ms <= MAX_OCCURRED_AT_MS else None

    @property
    def storable_attempt_number(self) -> int | None:
        number = self.attempt_number
        return number if number is not None and 0 <= number <= MAX_ATTEMPT_NUMBER else None

    @functools.cached_property
    def dedup_key(self) -> str:
        """sha256 over what makes two events the same change; never the eventId or attempt.

        Cached: intake asks for it several times per event (dedup within a group, the insert,
        matching the inserted rows back). `cached_property` writes the instance `__dict__`
        directly, which a frozen dataclass allows."""
        parts = [
            self.subscription_type,
            self.object_id,
            self.property_name,
            self.property_value,
            self.occurred_at_ms,
            self.primary_object_id,
            sorted(self.merged_object_ids),
            self.new_object_id,
        ]
        encoded = json.dumps(parts, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(encoded.encode("utf-8")).hexdigest()

    def merge_ids(self) -> tuple[str, list[str]]:
        """(survivor, ids merged away): the new record when HubSpot made one, else the primary."""
        primary = self.primary_object_id or self.object_id
        survivor = self.new_object_id or primary
        old = [primary, *self.merged_object_ids, self.object_id]
        return survivor, list(dict.fromkeys(i for i in old if i != survivor))


def is_own_write(event: IncomingEvent, app_id: str | None) -> bool:
    """A change hubsync's own app made (only recognisable when HUBSPOT_APP_ID is set)."""
    return (
        app_id is not None
        and event.change_source == INTEGRATION_SOURCE
        and event.source_id == app_id
    )


def parse_delivery(body: bytes) -> list[IncomingEvent]:
    """The events of a verified body, or `DeliveryError` naming the index and field at fault."""
    try:
        document = parse_json(body)
    except JsonInputError as exc:
        raise DeliveryError(str(exc)) from None
    if not isinstance(document, list):
        raise DeliveryError(f"expected a JSON array of events, got {_json_type(document)}")
    checked = not may_hold_unstorable_text(body)
    return [parse_event(index, item, storable_text=checked) for index, item in enumerate(document)]


# The only ways a NUL character or a lone surrogate gets into a string json.loads returns
# from bytes: a `\u0000` or `\uDxxx` escape, a raw surrogate (json.loads decodes bytes with
# "surrogatepass"; its UTF-8 form starts with 0xED), or a UTF-16/32 body (holding 0x00 bytes).
_UNSTORABLE_MARKERS = (b"\\u0000", b"\\ud", b"\\uD", b"\xed", b"\x00")


def may_hold_unstorable_text(body: bytes) -> bool:
    """False when no string parsed from `body` can hold what the database refuses, so the
    per-value walk (`storable`) can be skipped: the intake's hot path. True is only a maybe."""
    return any(marker in body for marker in _UNSTORABLE_MARKERS)


def parse_event(index: int, item: object, *, storable_text: bool = False) -> IncomingEvent:
    """One event; `DeliveryError` when its shape is wrong (the delivery is refused whole),
    `problem` set when its shape is right but a value cannot be stored or acted on.
    `storable_text`: the caller knows every string in `item` is storable."""
    if not isinstance(item, dict):
        raise DeliveryError(f"event {index}: expected an object, got {_json_type(item)}")
    clean, text_problem = (item, None) if storable_text else storable(item)
    event = _parse_fields(index, clean)
    problem = text_problem or _range_problem(event)
    return dataclasses.replace(event, problem=problem) if problem else event


def bound_by_receipt(
    events: Sequence[IncomingEvent],
    received_at: datetime,
    max_skew_seconds: int = MAX_CLOCK_SKEW_SECONDS,
) -> list[IncomingEvent]:
    """The events, those dated more than `max_skew_seconds` after `received_at` marked with
    the problem (stored, failed with the reason, never applied) and without a stored time."""
    latest_ms = int(received_at.timestamp() * 1000) + max_skew_seconds * 1000
    bounded = []
    for event in events:
        if event.occurred_at_ms <= latest_ms:
            bounded.append(event)
            continue
        ahead = f"{(event.occurred_at_ms - latest_ms) / 1000 + max_skew_seconds:.0f} s"
        problem = (
            f"occurredAt {event.occurred_at_ms} ({event.occurred_at.isoformat()}) is {ahead} "
            f"after the event was received ({received_at.isoformat()}), more than the "
            f"{max_skew_seconds} s of clock skew allowed: not applied, as a time in the future "
            "would beat every real edit until then"
        )
        bounded.append(
            dataclasses.replace(event, problem=event.problem or problem, dated_ahead=True)
        )
    return bounded


def _range_problem(event: IncomingEvent) -> str | None:
    if event.storable_occurred_at is None:
        return f"occurredAt {event.occurred_at_ms} is out of range (0 to {MAX_OCCURRED_AT_MS} ms)"
    if event.attempt_number is not None and event.storable_attempt_number is None:
        return f"attemptNumber {event.attempt_number} is out of range (0 to {MAX_ATTEMPT_NUMBER})"
    if len(event.merged_object_ids) > MAX_MERGED_IDS:
        return (
            f"mergedObjectIds names {len(event.merged_object_ids)} ids; a merge names at most "
            f"{MAX_MERGED_IDS}"
        )
    return None


def storable(value: Any, path: str = "") -> tuple[Any, str | None]:
    """`value` with every string the database cannot hold made holdable — a NUL character
    becomes the text `\\u0000`, a lone surrogate its `\\udXXX` escape — and the first
    problem found, naming where (None when nothing had to change)."""
    if isinstance(value, str):
        if "\x00" in value:
            fixed, _ = storable(value.replace("\x00", "\\u0000"), path)
            return fixed, f"{path or 'a value'} contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            fixed = value.encode("utf-8", "backslashreplace").decode("utf-8")
            return fixed, f"{path or 'a value'} contains a lone surrogate (invalid Unicode)"
        return value, None
    if isinstance(value, dict):
        problem: str | None = None
        result: dict[str, Any] = {}
        for key, item in value.items():
            clean_key, key_problem = storable(key, f"{path}.{key!r}" if path else "a key")
            clean, item_problem = storable(item, f"{path}.{clean_key}" if path else clean_key)
            result[clean_key] = clean
            problem = problem or key_problem or item_problem
        return result, problem
    if isinstance(value, list):
        problem = None
        items = []
        for n, item in enumerate(value):
            clean, item_problem = storable(item, f"{path}[{n}]")
            items.append(clean)
            problem = problem or item_problem
        return items, problem
    return value, None


def _parse_fields(index: int, item: dict[str, Any]) -> IncomingEvent:
    fields = _Fields(index, item)
    subscription_type = item.get("subscriptionType", item.get("eventType"))
    if not isinstance(subscription_type, str) or not subscription_type.strip():
        raise DeliveryError(f"event {index}: subscriptionType (or eventType) is required")
    subscription_type = subscription_type.strip()
    property_name = fields.text("propertyName")
    if subscription_type.endswith(".propertyChange") and property_name is None:
        raise DeliveryError(f"event {index}: propertyName is required for {subscription_type}")
    merged = item.get("mergedObjectIds")
    if merged is not None and not isinstance(merged, list):
        raise DeliveryError(f"event {index}: mergedObjectIds must be an array of ids")
    return IncomingEvent(
        subscription_type=subscription_type,
        object_id=fields.required_id("objectId"),
        occurred_at_ms=fields.required_int("occurredAt"),
        raw=item,
        event_id=fields.integer("eventId"),
        attempt_number=fields.integer("attemptNumber"),
        property_name=property_name,
        property_value=fields.value("propertyValue"),
        change_source=fields.text("changeSource"),
        source_id=fields.text("sourceId"),
        primary_object_id=fields.object_id("primaryObjectId"),
        merged_object_ids=tuple(
            fields.id_of(f"mergedObjectIds[{n}]", value) for n, value in enumerate(merged or [])
        ),
        new_object_id=fields.object_id("newObjectId"),
    )


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


@dataclass(frozen=True)
class _Fields:
    """Typed access to one event's fields, with errors that name the event and the field."""

    index: int
    item: Mapping[str, Any]

    def _error(self, name: str, expected: str, value: object) -> DeliveryError:
        return DeliveryError(
            f"event {self.index}: {name} must be {expected}, got {_json_type(value)}"
        )

    def id_of(self, name: str, value: object) -> str:
        text: str | None = None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            text = str(value)
        elif isinstance(value, str) and value.strip().isdigit():
            text = value.strip()
        if text is None:
            raise self._error(name, "a numeric id", value)
        if len(text) > MAX_ID_DIGITS:
            raise DeliveryError(f"event {self.index}: {name} is longer than {MAX_ID_DIGITS} digits")
        return text

    def object_id(self, name: str) -> str | None:
        value = self.item.get(name)
        return None if value is None else self.id_of(name, value)

    def required_id(self, name: str) -> str:
        if self.item.get(name) is None:
            raise DeliveryError(f"event {self.index}: {name} is required")
        return self.id_of(name, self.item[name])

    def integer(self, name: str) -> int | None:
        value = self.item.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self._error(name, "an integer", value)
        try:
            number = float(value)
        except ValueError:
            raise self._error(name, "an integer", value) from None
        if not number.is_integer() or abs(number) >= 2**63:
            raise self._error(name, "an integer", value)
        return int(number)

    def required_int(self, name: str) -> int:
        number = self.integer(name)
        if number is None:
            raise DeliveryError(f"event {self.index}: {name} is required")
        return number

    def text(self, name: str) -> str | None:
        value = self.item.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise self._error(name, "a string", value)

    def value(self, name: str) -> str | None:
        """A property value: HubSpot sends strings, but any scalar is kept as text."""
        value = self.item.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        raise self._error(name, "a string", value)
