"""The query string, read the same way on every route: each parameter is parsed into what it
means (a bounded whole number, a UUID, one of a few words, a short text) or refused with 422
`invalid_request` naming it in `field`. Nothing a client typed reaches the database unread —
PostgreSQL refuses a NUL byte in text and a non-UUID where it compares ids, and would make
either a 500."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from starlette.requests import Request

from app.api.errors import ApiError

STATUS = 422
MAX_TEXT_CHARS = 200
# Ids are BIGINT: 18 digits always fit.
MAX_ID = 10**18 - 1


def _refuse(name: str, detail: str) -> ApiError:
    return ApiError(STATUS, f"{name}: {detail}", extra={"field": name})


def _raw(request: Request, name: str) -> str | None:
    """The parameter as sent; None when absent. Given blank (`?limit=`), a number, a word or
    an id is refused like any other value it cannot be; blank text means "any"."""
    return request.query_params.get(name)


def query_int(
    request: Request, name: str, *, default: int | None, low: int = 1, high: int = MAX_ID
) -> int | None:
    raw = _raw(request, name)
    if raw is None:
        return default
    if (
        not (raw.isascii() and raw.isdigit())
        or len(raw) > len(str(high))
        or not (low <= int(raw) <= high)
    ):
        raise _refuse(name, f"expected a whole number from {low} to {high}")
    return int(raw)


def query_limit(request: Request, *, default: int, high: int) -> int:
    limit = query_int(request, "limit", default=default, low=1, high=high)
    assert limit is not None  # noqa: S101 -- a default is given
    return limit


def query_text(request: Request, name: str, *, max_chars: int = MAX_TEXT_CHARS) -> str | None:
    """Free text (a search, a filter), stripped; None when blank. Control characters are
    refused: they are never part of a name, a BAN or an error text, and NUL cannot be stored."""
    raw = refuse_control_characters(name, _raw(request, name))
    if not raw:
        return None
    if len(raw) > max_chars:
        raise _refuse(name, f"at most {max_chars} characters")
    return raw.strip() or None


def refuse_control_characters(name: str, value: str | None) -> str | None:
    """The value, unless it holds a control character (also for text in a JSON body)."""
    if value is not None and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise _refuse(name, "control characters (such as NUL) are not allowed")
    return value


def query_choice(
    request: Request, name: str, choices: Collection[str], *, default: str | None = None
) -> str | None:
    raw = _raw(request, name)
    if raw is None:
        return default
    if raw not in choices:
        raise _refuse(name, f"expected one of {', '.join(choices)}")
    return raw


def query_uuid(request: Request, name: str) -> str | None:
    """A UUID in its canonical text form, whichever way it was spelt."""
    raw = _raw(request, name)
    if raw is None:
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise _refuse(name, "expected a UUID") from None
