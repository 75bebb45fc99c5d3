"""Retry timing: exponential with jitter, Retry-After honoured, a maximum age."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from app.settings import Settings
from app.sync.core.backoff import RetryPolicy


def test_first_retries_come_near_one_two_and_four_seconds() -> None:
    policy = RetryPolicy(jitter=0.2, rng=random.Random(7))
    for attempts, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)]:
        delays = [policy.delay(attempts) for _ in range(500)]
        assert min(delays) >= nominal * 0.8
        assert max(delays) <= nominal * 1.2
        # Jitter really spreads them: no retry storm of identical delays.
        assert max(delays) - min(delays) > nominal * 0.2


def test_delays_are_capped_and_never_overflow() -> None:
    policy = RetryPolicy(base_seconds=1, max_delay_seconds=900, jitter=0.0)
    assert policy.delay(11) == 900.0
    assert policy.delay(10_000) == 900.0
    assert policy.nominal_delay(0) == 1.0


def test_retry_after_replaces_the_backoff_and_is_never_undercut() -> None:
    policy = RetryPolicy(jitter=0.2, rng=random.Random(1))
    delays = [policy.delay(1, retry_after=30.0) for _ in range(200)]
    assert min(delays) >= 30.0
    assert max(delays) <= 33.0


def test_a_job_older_than_the_maximum_age_is_exhausted() -> None:
    policy = RetryPolicy(max_age_seconds=3600)
    created = datetime(2026, 1, 1, tzinfo=UTC)
    assert not policy.exhausted(created, created + timedelta(minutes=59))
    assert policy.exhausted(created, created + timedelta(minutes=61))


def test_policy_follows_the_settings() -> None:
    settings = Settings.from_mapping(
        {
            "HUBSYNC_RETRY_BASE_SECONDS": "2",
            "HUBSYNC_RETRY_MAX_DELAY": "10m",
            "HUBSYNC_RETRY_MAX_AGE": "6h",
        }
    )
    policy = RetryPolicy.from_settings(settings)
    assert (policy.base_seconds, policy.max_delay_seconds, policy.max_age_seconds) == (
        2.0,
        600.0,
        21600.0,
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"base_seconds": 0}, {"jitter": 1.0}, {"max_age_seconds": 0}, {"max_delay_seconds": 0.5}],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
