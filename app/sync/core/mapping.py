"""Values between WARP and HubSpot: blanks, paths into records, and one canonical form.

Every comparison hubsync makes runs on *canonical* values (`str | None`), never on raw ones:
HubSpot returns every property as a string and WARP holds Decimals, booleans and JSON, so
`10000`, `"10000.00"` and `Decimal("1E+4")` must be one value or fields flap forever.

Canonical forms, by value type:

- blank (missing, None, "" or only whitespace) is `None`, for every type;
- text: the string with surrounding whitespace stripped (inside whitespace and case are kept);
- decimal: plain notation, no exponent, no trailing zeros, no float drift (`"10000"`, `"0.1"`);
- boolean: `"true"` or `"false"`;
- enumeration: the WARP option (a key of the rule's `value_map`), from either side;
- a transformed rule (`email_domain`): the transform's output (`"acme.com"`).

The WARP side is read with `normalize`, the HubSpot side with `normalize_hubspot`; both are
idempotent, so a canonical value normalizes to itself. A value that cannot be read raises
`MappingError` naming the field: a bad value is never silently taken for a blank.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Final, TypeAlias

from app.errors import HubsyncError
from app.sync.core.rules import FieldRule, ValueType

Canonical: TypeAlias = str | None


class MappingError(HubsyncError, ValueError):
    """A value that cannot be read or written for a field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# --- paths into a customer record ---------------------------------------------------------


def _as_object(value: Any, path: str, where: str) -> Mapping[str, Any] | None:
    """A JSON column arrives as a dict (PostgreSQL jsonb) or as JSON text (SQLite)."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise MappingError(path, f"{where} is not valid JSON ({error.msg})") from None
    if value is None or isinstance(value, Mapping):
        return value
    raise MappingError(path, f"{where} is {type(value).__name__}, not a JSON object")


def get_path(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (`contact.email`); None where any part is missing."""
    if "." not in path:  # a plain column: most rules
        return record.get(path)
    segments = path.split(".")
    current: Mapping[str, Any] | None = record
    for depth, segment in enumerate(segments[:-1]):
        value = current.get(segment) if current else None
        if isinstance(value, dict):  # most documents: a decoded JSON object, taken as it is
            current = value
            continue
        current = _as_object(value, path, ".".join(segments[: depth + 1]))
        if current is None:
            return None
    return current.get(segments[-1]) if current else None


def set_path(record: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `record` with `path` set, other keys kept; JSON columns come back as dicts."""
    segments = path.split(".")

    def put(container: Mapping[str, Any] | None, depth: int) -> dict[str, Any]:
        updated = dict(container or {})
        segment = segments[depth]
        if depth == len(segments) - 1:
            updated[segment] = value
        else:
            where = ".".join(segments[: depth + 1])
            updated[segment] = put(_as_object(updated.get(segment), path, where), depth + 1)
        return updated

    return put(record, 0)


def path_column(path: str) -> str:
    """The WARP column a path lives in (`contact.email` -> `contact`)."""
    return path.split(".", 1)[0]


# --- the email_domain transform ---------------------------------------------------------------

# Free-mail providers: their domain says nothing about the customer, so it is not synced.
FREE_MAIL_DOMAINS: Final = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "live.com", "msn.com", "aol.com",
        "aim.com", "icloud.com", "me.com", "mac.com", "web.de", "proton.me", "pm.me",
        "protonmail.com", "protonmail.ch", "mail.ru", "bk.ru", "list.ru", "inbox.ru",
        "rambler.ru", "zoho.com", "zohomail.com", "ymail.com", "rocketmail.com", "mail.com",
        "gmx.com", "gmx.net", "gmx.de", "yandex.com", "yandex.ru", "fastmail.com", "hey.com",
        "tutanota.com", "tuta.io", "hushmail.com", "qq.com", "163.com", "126.com", "naver.com",
        "rediffmail.com", "t-online.de", "freenet.de", "orange.fr", "wanadoo.fr", "free.fr",
        "laposte.net", "libero.it", "seznam.cz", "wp.pl", "o2.pl", "interia.pl", "ukr.net",
        "comcast.net", "verizon.net", "att.net", "sbcglobal.net", "btinternet.com", "sky.com",
        "virginmedia.com",
    }
)  # fmt: skip
# Providers with a domain per country (yahoo.co.uk, hotmail.fr, gmx.at, yandex.kz, ...).
FREE_MAIL_BRANDS: Final = frozenset({"yahoo", "hotmail", "outlook", "live", "gmx", "yandex"})

_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalize_domain(field: str, value: str) -> str:
    domain = value.strip().lower().rstrip(".")
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253 or not all(map(_DOMAIN_LABEL.fullmatch, labels)):
        raise MappingError(field, f"{value!r} is not a domain name")
    return domain


def is_free_mail(domain: str) -> bool:
    if domain in FREE_MAIL_DOMAINS:
        return True
    brand, *suffix = domain.split(".")
    # brand + a country suffix of one or two short labels: yahoo.com, yahoo.co.uk.
    return brand in FREE_MAIL_BRANDS and len(suffix) <= 2 and all(len(s) <= 3 for s in suffix)


def email_domain(field: str, value: object) -> str | None:
    """`billing@acme.com` -> `acme.com`; None for blank and free-mail addresses.

    A bare domain is accepted as its own domain, so the transform is idempotent and a
    canonical value normalizes to itself.
    """
    if is_blank(value):
        return None
    if not isinstance(value, str):
        raise MappingError(field, f"expected an email address, got {type(value).__name__}")
    text = value.strip()
    if "@" in text:
        local, _, host = text.rpartition("@")
        if not local:
            raise MappingError(field, f"{value!r} is not an email address")
        text = host
    domain = normalize_domain(field, text)
    return None if is_free_mail(domain) else domain


# --- canonical values by type -------------------------------------------------------------

# Beyond these bounds a value is a typo or an attack, not a balance: refuse it rather than
# print a million digits.
_MAX_DIGITS = 60
_MAX_EXPONENT = 40
_WIDE = Context(prec=_MAX_DIGITS + 10)

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


def _parse_decimal(field: str, text: str) -> Decimal:
    # Decimal() also takes "1_000" and "  nan "; HubSpot and WARP never send the former.
    if "_" not in text:
        try:
            return Decimal(text.strip())
        except InvalidOperation:
            pass
    raise MappingError(field, f"{text!r} is not a number")


def _decimal(field: str, value: object) -> Decimal:
    if isinstance(value, bool):
        raise MappingError(field, f"expected a number, got the boolean {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        # repr is the shortest string that round-trips, so 0.1 stays 0.1, not 0.1000000000000000055
        number = Decimal(repr(value))
    elif isinstance(value, str):
        number = _parse_decimal(field, value)
    else:
        raise MappingError(field, f"expected a number, got {type(value).__name__}")
    if not number.is_finite():
        raise MappingError(field, f"{value!r} is not a finite number")
    if len(number.as_tuple().digits) > _MAX_DIGITS or abs(number.adjusted()) > _MAX_EXPONENT:
        raise MappingError(field, f"{value!r} is out of range")
    return number


def _canonical_decimal(field: str, value: object) -> str:
    kind = type(value)
    if kind is str or kind is Decimal:
        try:
            known = _DECIMAL_TEXT.get(value)
        except TypeError:  # a signalling NaN cannot be hashed (and `_decimal` refuses it)
            known = None
        if known is not None:
            return known
    number = _decimal(field, value)
    text = "0" if number.is_zero() else format(number.normalize(_WIDE), "f")  # "0": also -0, 0E-7
    if kind is str or kind is Decimal:
        if len(_DECIMAL_TEXT) >= _DECIMAL_TEXT_KEPT:
            _DECIMAL_TEXT.clear()
        _DECIMAL_TEXT[value] = text
    return text


# The canonical text of numbers read lately, by the value as it came (WARP's Decimal or
# HubSpot's text; a Decimal never equals a str, so one table holds both): a batch reads a few
# numbers a customer on each side, and most come again unchanged (a credit limit, a balance
# since the last sync). Only values that were read are kept.
_DECIMAL_TEXT: dict[object, str] = {}
_DECIMAL_TEXT_KEPT = 20_000


def _canonical_boolean(field: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value in (0, 1):
        return "true" if value else "false"
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in _TRUE:
            return "true"
        if word in _FALSE:
            return "false"
    raise MappingError(field, f"{value!r} is not a boolean (expected true or false)")


def _canonical_text(field: str, value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise MappingError(field, f"expected text, got {type(value).__name__}")


def _enumeration_option(rule: FieldRule, value: object, *, hubspot: bool) -> str:
    text = _canonical_text(rule.warp_field, value)
    if rule.value_map is None:
        return text
    # (WARP option, this side's spelling of it)
    pairs = [(key, mapped if hubspot else key) for key, mapped in rule.value_map.items()]
    for key, spelling in pairs:
        if spelling == text:
            return key
    for key, spelling in pairs:
        if spelling.casefold() == text.casefold():
            return key
    side = "HubSpot" if hubspot else "WARP"
    options = ", ".join(spelling for _, spelling in pairs)
    raise MappingError(rule.warp_field, f"{value!r} is not a {side} option ({options})")


def _canonical(rule: FieldRule, value: object, *, hubspot: bool) -> Canonical:
    if value is None or (isinstance(value, str) and not value.strip()):  # is_blank, inline
        return None
    field = rule.warp_field
    if rule.transform == "email_domain":
        if hubspot:
            return normalize_domain(rule.hubspot_property, _canonical_text(field, value))
        return email_domain(field, value)
    if rule.transform is not None:
        raise MappingError(field, f"unknown transform {rule.transform!r}")
    match rule.value_type:
        case ValueType.DECIMAL:
            return _canonical_decimal(field, value)
        case ValueType.BOOLEAN:
            return _canonical_boolean(field, value)
        case ValueType.ENUMERATION:
            return _enumeration_option(rule, value, hubspot=hubspot)
        case _:
            return _canonical_text(field, value)


def normalize(rule: FieldRule, warp_value: object) -> Canonical:
    """The canonical form of a WARP value (or of a canonical value: this is idempotent)."""
    return _canonical(rule, warp_value, hubspot=False)


def normalize_hubspot(rule: FieldRule, hubspot_value: object) -> Canonical:
    """The canonical form of a HubSpot property value (a string, or None when unset)."""
    return _canonical(rule, hubspot_value, hubspot=True)


def to_hubspot(rule: FieldRule, warp_value: object) -> str:
    """The string to send HubSpot for a WARP or canonical value; "" clears the property."""
    canonical = normalize(rule, warp_value)
    if canonical is None:
        return ""
    if rule.value_type is ValueType.ENUMERATION and rule.value_map is not None:
        return rule.value_map[canonical]
    return canonical


def canonical_to_warp(rule: FieldRule, canonical: Canonical) -> Any:
    """The Python value to store in WARP: Decimal, bool, str, or None for blank."""
    if rule.transform is not None:
        raise MappingError(
            rule.warp_field, f"transform {rule.transform!r} is lossy: WARP cannot be written"
        )
    value = normalize(rule, canonical)
    if value is None:
        return None
    match rule.value_type:
        case ValueType.DECIMAL:
            return Decimal(value)
        case ValueType.BOOLEAN:
            return value == "true"
        case _:
            return value


def to_warp(rule: FieldRule, hubspot_value: object) -> Any:
    """The Python value to store in WARP for a HubSpot property value."""
    return canonical_to_warp(rule, normalize_hubspot(rule, hubspot_value))


# --- whole records ------------------------------------------------------------------------


def read_warp_values(rules: Iterable[FieldRule], record: Mapping[str, Any]) -> dict[str, Canonical]:
    """Canonical WARP values of a customer record, by warp_field, for the enabled rules."""
    # `normalize(rule, get_path(record, name))`, with a plain column read inline: a batch
    # reads about a thousand values here.
    values: dict[str, Canonical] = {}
    for rule in rules:
        if rule.enabled:
            name = rule.warp_field
            raw = record.get(name) if "." not in name else get_path(record, name)
            values[name] = _canonical(rule, raw, hubspot=False)
    return values


def read_hubspot_values(
    rules: Iterable[FieldRule], properties: Mapping[str, str | None]
) -> dict[str, Canonical]:
    """Canonical HubSpot values of a company that was read, by property, for enabled rules.

    A property absent from `properties` counts as unset (blank): the company was read. To say
    "HubSpot was not read", leave the property out of the mapping given to `decide_entity`.
    """
    return {
        rule.hubspot_property: normalize_hubspot(rule, properties.get(rule.hubspot_property))
        for rule in rules
        if rule.enabled
    }


def hubspot_properties(
    rules: Iterable[FieldRule], hubspot_writes: Mapping[str, Canonical]
) -> dict[str, str]:
    """The `properties` body of a HubSpot write, from canonical values by property."""
    by_property = {rule.hubspot_property: rule for rule in rules}
    return {prop: to_hubspot(by_property[prop], value) for prop, value in hubspot_writes.items()}


def apply_warp_writes(
    rules: Iterable[FieldRule], record: Mapping[str, Any], warp_writes: Mapping[str, Canonical]
) -> dict[str, Any]:
    """A copy of `record` with canonical values written at their warp_field paths."""
    by_field = {rule.warp_field: rule for rule in rules}
    updated = dict(record)
    for field, value in warp_writes.items():
        updated = set_path(updated, field, canonical_to_warp(by_field[field], value))
    return updated


def warp_column_updates(
    rules: Iterable[FieldRule], record: Mapping[str, Any], warp_writes: Mapping[str, Canonical]
) -> dict[str, Any]:
    """Top-level columns to UPDATE for these writes; a JSON column comes back whole, as a dict."""
    updated = apply_warp_writes(rules, record, warp_writes)
    return {column: updated[column] for column in dict.fromkeys(map(path_column, warp_writes))}
