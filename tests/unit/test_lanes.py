"""Which worker lanes claim: enough to fill HubSpot's limit, never a crowd at the limiter."""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import Settings
from app.sync.worker.lanes import START_LANES, LaneControl


@dataclass
class FakeBudget:
    waiting: int = 0
    used_share: float = 0.0
    request_interval: float = 0.1  # HubSpot's 100 per 10 s


def test_a_backlog_with_room_in_the_limit_brings_in_one_more_lane_per_claim() -> None:
    control = LaneControl(16, FakeBudget(waiting=0))
    assert control.target == START_LANES
    for expected in range(START_LANES + 1, 17):
        control.after_claim(claimed=100, full=True)
        assert control.target == expected
    control.after_claim(claimed=100, full=True)
    assert control.target == 16  # never above the configured maximum


def test_requests_queued_at_the_limiter_mean_one_lane_fewer_is_enough() -> None:
    budget = FakeBudget(waiting=3)
    control = LaneControl(16, budget)
    for _ in range(10):
        control.after_claim(claimed=100, full=True)
    assert control.target == 1
    budget.waiting = 1  # one queued request: the limit is filled, nothing to change
    control.after_claim(claimed=100, full=True)
    assert control.target == 1


def test_a_partial_claim_changes_nothing_but_ends_the_backlog() -> None:
    control = LaneControl(16, FakeBudget(waiting=0))
    control.after_claim(claimed=100, full=True)
    control.after_claim(claimed=3, full=False)
    assert (control.target, control.backlog) == (START_LANES + 1, False)


def test_lanes_join_in_order_within_the_target_while_a_backlog_lasts() -> None:
    control = LaneControl(16, FakeBudget(waiting=5))
    control.after_claim(claimed=100, full=True)  # target 3
    assert control.may_claim(0, woken=False)
    assert not control.may_claim(1, woken=False)  # lane 0 is not busy: it takes the work
    control.busy.update({0, 1})
    assert control.may_claim(2, woken=False)
    assert not control.may_claim(3, woken=False)  # beyond the target


def test_a_trickle_takes_the_next_free_lane_when_woken_for_new_work() -> None:
    budget = FakeBudget(used_share=0.9)
    control = LaneControl(16, budget)
    control.busy.add(0)
    assert control.may_claim(1, woken=True)  # the spacing, not the lane, says when
    assert not control.may_claim(1, woken=False)  # nothing new arrived
    assert not control.may_claim(2, woken=True)  # lane 1 is free: it takes the work


def test_a_trickle_is_spaced_by_one_request_over_the_room_left() -> None:
    budget = FakeBudget(used_share=0.0)
    control = LaneControl(16, budget)
    assert control.claim_delay() == 0  # nothing claimed yet
    control.after_claim(claimed=1, full=False)
    assert 0.09 < control.claim_delay() <= 0.1  # an empty window: one request's time
    budget.used_share = 0.5
    assert 0.19 < control.claim_delay() <= 0.2  # half the window left: twice that
    budget.used_share = 0.75
    assert 0.39 < control.claim_delay() <= 0.4
    budget.used_share = 1.0
    assert 0.9 < control.claim_delay() <= 1.0  # at most a tenth of the window


def test_the_spacing_counts_from_the_latest_claim_that_took_work() -> None:
    budget = FakeBudget(used_share=0.5)
    control = LaneControl(16, budget)
    control.after_claim(claimed=3, full=False)
    spaced = control.claim_delay()
    control.after_claim(claimed=0, full=False)  # an empty poll spent no request
    assert 0 < control.claim_delay() <= spaced
    control.last_claim -= 1.0  # the spacing has passed
    assert control.claim_delay() == 0


def test_an_empty_claim_after_a_wake_up_spaces_like_a_claim_another_process_made() -> None:
    control = LaneControl(16, FakeBudget(used_share=0.5))
    control.after_claim(claimed=0, full=False, woken=True)  # the NOTIFY's job went elsewhere
    assert 0.19 < control.claim_delay() <= 0.2


def test_a_backlog_is_never_paced() -> None:
    control = LaneControl(16, FakeBudget(used_share=0.9))
    control.after_claim(claimed=100, full=True)
    assert control.claim_delay() == 0
    assert LaneControl(16, None).claim_delay() == 0  # no budget to read


def test_without_a_budget_every_lane_joins_a_backlog_and_none_a_trickle() -> None:
    control = LaneControl(3, None)
    control.busy.update({0, 1})
    assert not control.may_claim(1, woken=True)
    control.after_claim(claimed=100, full=True)
    assert control.may_claim(2, woken=False)
    assert control.target == 3


def test_postgres_allows_sixteen_lanes_and_sqlite_one() -> None:
    postgres = Settings.from_env(
        {"HUBSYNC_DATABASE_URL": "postgresql+asyncpg://h@db/hubsync"}, env_file=None
    )
    sqlite = Settings.from_env({"HUBSYNC_DATABASE_URL": "sqlite+aiosqlite:///x.db"}, env_file=None)
    assert (postgres.effective_worker_concurrency, sqlite.effective_worker_concurrency) == (16, 1)
