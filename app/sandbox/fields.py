"""Typed fields of a request, read the way HubSpot reads them: a wrong JSON type is a 400.

HubSpot's documents type every field (ids and cursors are strings, counts are 32-bit integers,
flags are booleans, enumerations are closed), and HubSpot refuses a request that breaks them
with 400 VALIDATION_ERROR before doing anything. The sandbox reads every body field and query
parameter through these, so a request HubSpot would refuse is never half taken. Nothing here
knows the sandbox's state.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from starlette.requests import Request

from app.sandbox.errors import bad_request

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
DATA_SENSITIVITIES = ("highly_sensitive", "non_sensitive", "sensitive")
_INTEGER = re.compile(r"-?[0-9]{1,20}")


def object_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    return body


def string_list(body: dict[str, Any], name: str) -> list[str] | None:
    """An optional array of strings in a JSON body (None when absent or empty; a null is
    a wrong type, as everywhere here: HubSpot's documents make no field nullable)."""
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"`{name}` must be an array of strings", **{name: [str(value)]})
    return value or None


def optional_string(body: dict[str, Any], name: str) -> str | None:
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, str):
        raise bad_request(f"`{name}` must be a string", **{name: [str(value)]})
    return value


def required_string(body: dict[str, Any], name: str, where: str = "The request") -> str:
    value = optional_string(body, name)
    if value is None:
        raise bad_request(f"{where} needs `{name}` (a string)", **{name: [""]})
    return value


def optional_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise bad_request(f"`{name}` must be true or false", **{name: [str(value)]})
    return value


def optional_enum(body: dict[str, Any], name: str, allowed: Collection[str]) -> str | None:
    value = optional_string(body, name)
    if value is not None and value not in allowed:
        raise bad_request(
            f"`{name}` must be one of {', '.join(sorted(allowed))}, got {value!r}",
            **{name: [value]},
        )
    return value


def optional_int(body: dict[str, Any], name: str, default: int) -> int:
    """A 32-bit integer field of a body: a JSON number without a fraction, never a bool or
    a string of digits (HubSpot's documents type these `int32`)."""
    if name not in body:
        return default
    raw = body[name]
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise bad_request(f"`{name}` must be an integer, got {raw!r}", **{name: [str(raw)]})
    return int32(raw, name)


def int32(value: int, name: str) -> int:
    if not INT32_MIN <= value <= INT32_MAX:
        raise bad_request(
            f"`{name}` must fit a 32-bit integer, got {value}", **{name: [str(value)]}
        )
    return value


def object_id(raw: object, name: str = "id") -> str:
    """An object id (or unique value) as given in a batch input: a non-empty string."""
    if not isinstance(raw, str) or raw == "":
        raise bad_request(f"Each input needs an `{name}` (a string)", **{name: [str(raw)]})
    return raw


# -- query parameters ------------------------------------------------------------------


def csv_param(request: Request, name: str) -> list[str] | None:
    """A list query parameter, given repeated (`a=1&a=2`) or comma-separated (`a=1,2`)."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def bool_param(request: Request, name: str) -> bool:
    """A boolean query parameter: `true` or `false` (any case), given at most once."""
    values = request.query_params.getlist(name)
    if not values:
        return False
    if len(values) > 1 or values[0].lower() not in ("true", "false"):
        raise bad_request(f"`{name}` must be true or false", **{name: values})
    return values[0].lower() == "true"


def int_param(request: Request, name: str, default: int) -> int:
    values = request.query_params.getlist(name)
    if not values:
        return default
    raw = values[0].strip()
    if len(values) > 1 or not _INTEGER.fullmatch(raw):
        raise bad_request(f"`{name}` must be an integer", **{name: values})
    return int32(int(raw), name)


def enum_param(request: Request, name: str, allowed: Collection[str]) -> str | None:
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1 or values[0] not in allowed:
        raise bad_request(f"`{name}` must be one of {', '.join(sorted(allowed))}", **{name: values})
    return values[0]
