"""Property values as HubSpot stores them: always strings, in one canonical form per type.

Numbers lose trailing zeros ("1.50" -> "1.5"), booleans become "true"/"false", datetimes ISO 8601
with milliseconds and `Z`, dates `YYYY-MM-DD`; an empty string (or null) clears a value.

Strict as HubSpot has been since January 2025: a number or boolean with surrounding spaces is
refused, and so is a date property given a time of day (a date is midnight UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from app.sandbox.clock import iso_from_ms

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PropertyDef(Protocol):
    """What a value's rules need of its property definition (`properties.PropertyDef` has
    it): named here, so this module needs nothing from the registry that uses it."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def field_type(self) -> str: ...
    @property
    def options(self) -> list[dict[str, Any]]: ...
    @property
    def is_boolean(self) -> bool: ...


_DAY_MS = 86_400_000


class InvalidValueError(ValueError):
    """A value that does not fit its property; the message is HubSpot's wording."""


def issue_code(prop: PropertyDef) -> str:
    if prop.is_boolean:
        return "INVALID_BOOLEAN"
    return {
        "number": "INVALID_DECIMAL",
        "enumeration": "INVALID_OPTION",
        "datetime": "INVALID_DATE",
        "date": "INVALID_DATE",
    }.get(prop.type, "INVALID_STRING")


def normalize_value(prop: PropertyDef, raw: object) -> str:
    """The stored string for `raw`; ValueError with HubSpot's wording when it does not fit."""
    if raw is None or raw == "":
        return ""
    if isinstance(raw, (dict, list)):
        raise InvalidValueError(f"{raw!r} is not a valid value for {prop.name}")
    if prop.is_boolean:
        text = str(raw).lower()
        if text not in ("true", "false"):
            raise InvalidValueError(f"{raw!r} is not a valid boolean value. Use true or false.")
        return text
    if isinstance(raw, bool):
        if prop.type == "string":
            return str(raw).lower()
        raise InvalidValueError(f"{raw!r} is not a valid value for {prop.name}")
    text = str(raw)
    if prop.type == "number":
        return _canonical_number(text)
    if prop.type == "enumeration":
        allowed = [o["value"] for o in prop.options]
        chosen = text.split(";") if prop.field_type == "checkbox" else [text]
        for value in chosen:
            if value not in allowed:
                raise InvalidValueError(f"{value} was not one of the allowed options: {allowed}")
        return text
    if prop.type == "datetime":
        return iso_from_ms(epoch_ms(text))
    if prop.type == "date":
        return _midnight_date(text)
    return text


def _midnight_date(text: str) -> str:
    ms = epoch_ms(text)
    if ms % _DAY_MS:
        raise InvalidValueError(
            f"{text!r} is not a valid date: a date property takes midnight UTC "
            "(YYYY-MM-DD or epoch milliseconds of a midnight), not a time of day"
        )
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def _canonical_number(text: str) -> str:
    if text != text.strip():
        raise InvalidValueError(f"{text!r} is not a valid number: remove the surrounding spaces.")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise InvalidValueError(f"{text!r} is not a valid number.") from None
    if not number.is_finite():
        raise InvalidValueError(f"{text!r} is not a valid number.")
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def epoch_ms(text: str) -> int:
    """Epoch milliseconds from digits, an ISO 8601 datetime, or a plain date."""
    stripped = text.strip()
    if stripped != text:
        raise InvalidValueError(f"{text!r} is not a valid date: remove the surrounding spaces.")
    if re.fullmatch(r"-?\d+", stripped):
        return int(stripped)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", stripped):
            moment = datetime.combine(date.fromisoformat(stripped), datetime.min.time(), UTC)
        else:
            moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise InvalidValueError(
            f"{text!r} is not a valid date; use epoch milliseconds or ISO 8601"
        ) from None
    # In whole milliseconds by integer arithmetic: `int(timestamp() * 1000)` rounds some
    # instants a millisecond down (274087259.715 * 1000 is 274087259714.99997).
    return (moment - _EPOCH) // timedelta(milliseconds=1)
