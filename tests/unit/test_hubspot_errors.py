"""How HubSpot's error answers are classified: what the queue will do with each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from app.hubspot.errors import (
    HubSpotAuthError,
    HubSpotConflictError,
    HubSpotDailyLimitError,
    HubSpotError,
    HubSpotNotFoundError,
    HubSpotPermanentError,
    HubSpotRateLimitError,
    HubSpotRetryableError,
    HubSpotUnavailableError,
    HubSpotValidationError,
    error_from_item,
    error_from_response,
    parse_retry_after,
    seconds_until_daily_reset,
)

NOW = datetime(2026, 3, 14, 22, 0, 0, tzinfo=UTC)


def classify(status: int, body: object = None, **headers: str) -> HubSpotError:
    return error_from_response(status, body, httpx.Headers(headers), now=NOW)


def rate_limit_body(policy: str) -> dict[str, str]:
    return {
        "status": "error",
        "message": f"You have reached your {policy.lower()} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c0ffee00-0000-4000-8000-000000000001",
        "policyName": policy,
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, HubSpotValidationError),
        (422, HubSpotValidationError),
        (401, HubSpotAuthError),
        (403, HubSpotAuthError),
        (404, HubSpotNotFoundError),
        (409, HubSpotConflictError),
        (405, HubSpotPermanentError),
        (500, HubSpotUnavailableError),
        (502, HubSpotUnavailableError),
        (503, HubSpotUnavailableError),
        (504, HubSpotUnavailableError),
        (521, HubSpotUnavailableError),
        (524, HubSpotUnavailableError),
        (423, HubSpotUnavailableError),
        (477, HubSpotUnavailableError),
    ],
)
def test_status_decides_the_class(status: int, expected: type[HubSpotError]) -> None:
    error = classify(status, {"message": "nope", "category": "SOMETHING", "correlationId": "c1"})
    assert type(error) is expected
    assert error.status == status
    assert error.message == "nope"
    assert error.retryable == issubclass(expected, HubSpotRetryableError)


def test_ten_secondly_429_is_retryable_after_ten_seconds_without_retry_after() -> None:
    error = classify(429, rate_limit_body("TEN_SECONDLY_ROLLING"))
    assert isinstance(error, HubSpotRateLimitError)
    assert error.retryable
    assert error.retry_after == 10.0
    assert error.policy_name == "TEN_SECONDLY_ROLLING"
    assert error.correlation_id == "c0ffee00-0000-4000-8000-000000000001"
    assert error.category == "RATE_LIMIT"


def test_secondly_429_waits_a_second() -> None:
    error = classify(429, rate_limit_body("SECONDLY"))
    assert isinstance(error, HubSpotRateLimitError)
    assert error.retry_after == 1.0


def test_retry_after_header_wins_over_the_policy_default() -> None:
    error = classify(429, rate_limit_body("TEN_SECONDLY_ROLLING"), **{"Retry-After": "3"})
    assert error.retry_after == 3.0


def test_retry_after_as_http_date() -> None:
    later = (NOW + timedelta(seconds=42)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now=NOW) == pytest.approx(42.0)
    assert parse_retry_after("soon", now=NOW) is None
    assert parse_retry_after(None) is None


def test_daily_429_is_not_retryable_and_waits_until_midnight() -> None:
    error = classify(429, rate_limit_body("DAILY"))
    assert isinstance(error, HubSpotDailyLimitError)
    assert not error.retryable
    assert not isinstance(error, HubSpotRetryableError)
    assert error.retry_after == 2 * 3600  # 22:00 UTC -> midnight UTC


def test_daily_reset_in_the_account_time_zone() -> None:
    new_york = timezone(timedelta(hours=-5))
    # 22:00 UTC is 17:00 in New York: seven hours to its midnight.
    assert seconds_until_daily_reset(NOW, new_york) == 7 * 3600


def test_locked_and_migration_wait_by_default_or_as_told() -> None:
    assert classify(423, {"message": "locked"}).retry_after == 2.0
    assert classify(477, {"message": "migrating"}, **{"Retry-After": "30"}).retry_after == 30.0
    assert classify(503, None).retry_after is None  # the caller's backoff decides


def test_error_without_a_json_body_still_has_a_message() -> None:
    error = classify(502, None)
    assert error.message == "HubSpot answered HTTP 502"
    assert str(error) == "502: HubSpot answered HTTP 502"


def test_str_is_message_status_category_and_correlation_id() -> None:
    error = classify(
        400,
        {
            "status": "error",
            "message": "Property values were not valid",
            "correlationId": "abc-123",
            "category": "VALIDATION_ERROR",
        },
    )
    assert str(error) == (
        "400 VALIDATION_ERROR: Property values were not valid (correlation id abc-123)"
    )
    assert "abc-123" in repr(error)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"status": "error", "category": "OBJECT_NOT_FOUND"}, HubSpotNotFoundError),
        ({"status": "error", "category": "VALIDATION_ERROR"}, HubSpotValidationError),
        ({"status": "error", "category": "CONFLICT"}, HubSpotConflictError),
        ({"status": "409", "category": "WHATEVER"}, HubSpotConflictError),
        ({"status": "error", "category": "UNHEARD_OF"}, HubSpotPermanentError),
    ],
)
def test_batch_item_errors_are_typed_by_status_or_category(
    item: dict[str, str], expected: type[HubSpotError]
) -> None:
    error = error_from_item({**item, "message": "m", "context": {"ids": ["1", "2"]}})
    assert type(error) is expected
    assert error.context == {"ids": ["1", "2"]}
