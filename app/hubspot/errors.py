"""The errors the HubSpot client raises, shaped for the queue to act on.

Every failure of a HubSpot call becomes one of these; nothing from httpx leaks out. The tree
says what to do, not what went wrong:

    HubSpotError                    status, category, message, correlation_id, retry_after
    ├── HubSpotRetryableError       try again later: after `retry_after` seconds when set,
    │   │                           else by the caller's own backoff
    │   ├── HubSpotRateLimitError   429 TEN_SECONDLY_ROLLING / SECONDLY (or no policy named)
    │   ├── HubSpotUnavailableError 5xx incl. 502/503/504/52x, 423 Locked, 477 migration, 408
    │   └── HubSpotTransportError   timeout or connection failure: no answer at all
    ├── HubSpotDailyLimitError      429 DAILY: stop every call until the daily reset;
    │                               `retry_after` = seconds until that reset
    └── HubSpotPermanentError       never retry as is; fail the job with the message
        ├── HubSpotValidationError  400 / 422: a property value, an unknown property, ...
        ├── HubSpotNotFoundError    404
        ├── HubSpotConflictError    409, e.g. a unique `warp_ban` already taken
        └── HubSpotAuthError        401 / 403: the token is wrong, revoked or lacks a scope

`HubSpotDailyLimitError` is deliberately not retryable: retrying it burns requests until the
reset. The daily reset is midnight in the HubSpot account's time zone, which the API does not
tell us; the client takes it as a setting (`daily_reset_timezone`, default UTC).

`str(error)` is HubSpot's own message with the status, category and correlation id: safe for
logs and for the queue's `last_error`. The access token is never part of any of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from app.errors import HubsyncError

# Waits used when HubSpot names a policy but sends no Retry-After. The official Node client
# waits 10 s for the rolling ten-second window; a second for the legacy per-second one.
TEN_SECONDLY_WAIT = 10.0
SECONDLY_WAIT = 1.0
LOCKED_WAIT = 2.0  # 423: HubSpot asks for at least two seconds
MIGRATION_WAIT = 10.0  # 477 without Retry-After


class HubSpotError(HubsyncError):
    """A HubSpot call failed; `message` is HubSpot's own words when it sent any."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        category: str | None = None,
        correlation_id: str | None = None,
        retry_after: float | None = None,
        context: Mapping[str, list[str]] | None = None,
        policy_name: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.category = category
        self.correlation_id = correlation_id
        self.retry_after = retry_after
        self.context: dict[str, list[str]] = dict(context or {})
        self.policy_name = policy_name

    def __str__(self) -> str:
        head = " ".join(str(part) for part in (self.status, self.category) if part is not None)
        text = f"{head}: {self.message}" if head else self.message
        if self.correlation_id:
            text += f" (correlation id {self.correlation_id})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, category={self.category!r}, "
            f"message={self.message!r}, correlation_id={self.correlation_id!r}, "
            f"retry_after={self.retry_after!r})"
        )


class HubSpotRetryableError(HubSpotError):
    retryable: ClassVar[bool] = True


class HubSpotRateLimitError(HubSpotRetryableError):
    pass


class HubSpotUnavailableError(HubSpotRetryableError):
    pass


class HubSpotTransportError(HubSpotRetryableError):
    pass


class HubSpotDailyLimitError(HubSpotError):
    pass


class HubSpotPermanentError(HubSpotError):
    pass


class HubSpotValidationError(HubSpotPermanentError):
    pass


class HubSpotNotFoundError(HubSpotPermanentError):
    pass


class HubSpotConflictError(HubSpotPermanentError):
    pass


class HubSpotAuthError(HubSpotPermanentError):
    pass


_BY_STATUS: dict[int, type[HubSpotPermanentError]] = {
    400: HubSpotValidationError,
    422: HubSpotValidationError,
    401: HubSpotAuthError,
    403: HubSpotAuthError,
    404: HubSpotNotFoundError,
    409: HubSpotConflictError,
}

# Categories HubSpot puts on one failed input of a batch, whose `status` is often just "error".
_BY_CATEGORY: dict[str, type[HubSpotError]] = {
    "VALIDATION_ERROR": HubSpotValidationError,
    "INVALID_PARAMS": HubSpotValidationError,
    "PROPERTY_DOESNT_EXIST": HubSpotValidationError,
    "OBJECT_NOT_FOUND": HubSpotNotFoundError,
    "CONFLICT": HubSpotConflictError,
    "OBJECT_ALREADY_EXISTS": HubSpotConflictError,
    "INVALID_AUTHENTICATION": HubSpotAuthError,
    "MISSING_SCOPES": HubSpotAuthError,
    "RATE_LIMITS": HubSpotRateLimitError,
    "LOCKED": HubSpotUnavailableError,
}


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header: a number of seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def seconds_until_daily_reset(now: datetime, timezone: tzinfo = UTC) -> float:
    """Seconds from `now` (aware) until the next midnight in `timezone`."""
    local = now.astimezone(timezone)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), timezone)
    return max(1.0, (midnight - local).total_seconds())


def error_from_response(
    status: int,
    body: Any,
    headers: Mapping[str, str],
    *,
    now: datetime | None = None,
    daily_reset_timezone: tzinfo = UTC,
) -> HubSpotError:
    """The typed error for a non-2xx answer. `headers` must be case-insensitive (httpx's)."""
    fields = body if isinstance(body, dict) else {}
    message = str(fields.get("message") or f"HubSpot answered HTTP {status}")
    category = fields.get("category") or fields.get("errorType")
    policy = fields.get("policyName")
    retry_after = parse_retry_after(headers.get("retry-after"), now=now)
    common: dict[str, Any] = {
        "status": status,
        "category": str(category) if category is not None else None,
        "correlation_id": _text(fields.get("correlationId")),
        "context": _context(fields.get("context")),
        "policy_name": str(policy) if policy is not None else None,
    }
    if status == 429:
        if str(policy).upper() == "DAILY":
            wait = seconds_until_daily_reset(now or datetime.now(UTC), daily_reset_timezone)
            return HubSpotDailyLimitError(message, retry_after=wait, **common)
        default = SECONDLY_WAIT if str(policy).upper() == "SECONDLY" else TEN_SECONDLY_WAIT
        return HubSpotRateLimitError(message, retry_after=retry_after or default, **common)
    if status == 423:
        return HubSpotUnavailableError(message, retry_after=retry_after or LOCKED_WAIT, **common)
    if status == 477:
        return HubSpotUnavailableError(message, retry_after=retry_after or MIGRATION_WAIT, **common)
    if status >= 500 or status == 408:
        return HubSpotUnavailableError(message, retry_after=retry_after, **common)
    return _BY_STATUS.get(status, HubSpotPermanentError)(message, retry_after=None, **common)


def error_from_item(item: Mapping[str, Any]) -> HubSpotError:
    """The typed error for one failed input inside a batch answer (HubSpot's StandardError)."""
    raw_status = str(item.get("status"))
    status = int(raw_status) if raw_status.isdigit() else None
    category = _text(item.get("category"))
    message = str(item.get("message") or "HubSpot refused this input")
    cls: type[HubSpotError]
    if status is not None and status in _BY_STATUS:
        cls = _BY_STATUS[status]
    else:
        cls = _BY_CATEGORY.get(category or "", HubSpotPermanentError)
    return cls(
        message,
        status=status,
        category=category,
        correlation_id=_text(item.get("id")),
        context=_context(item.get("context")),
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _context(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        return {}
    context: dict[str, list[str]] = {}
    for key, items in value.items():
        if isinstance(items, list):
            context[str(key)] = [str(item) for item in items]
        elif items is not None:
            context[str(key)] = [str(items)]
    return context
