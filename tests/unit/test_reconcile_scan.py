"""HubSpot's companies read from both ends (app/sync/reconcile/scan.py): every company
judged exactly once, however the two streams interleave, stop and resume."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sync.reconcile.full_run import pause_after
from app.sync.reconcile.scan import Scan

LIST_PAGE, TOP_PAGE = 100, 200


def list_pages(ids: list[int]) -> list[tuple[list[int], bool]]:
    ascending = sorted(ids)
    chunks = [ascending[n : n + LIST_PAGE] for n in range(0, len(ascending), LIST_PAGE)] or [[]]
    return [(chunk, n == len(chunks) - 1) for n, chunk in enumerate(chunks)]


def top_page(ids: list[int], below: int | None) -> tuple[list[int], bool]:
    lower = sorted((i for i in ids if below is None or i < below), reverse=True)
    page = lower[:TOP_PAGE]
    return page, len(page) < TOP_PAGE


def scan_all(ids: list[int], rng: random.Random, *, stop_after: int | None = None) -> list[int]:
    """Judge `ids` as the full run does (pages taken in a random order of the two streams),
    resuming from a saved scan when `stop_after` pages were judged. The ids judged, in
    order."""
    judged: list[int] = []
    scan = Scan()
    listed = list_pages(ids)
    next_list, below, taken = 0, None, 0
    while not scan.done:
        if stop_after is not None and taken == stop_after:
            # A takeover: only what the checkpoint holds survives, read-ahead is lost.
            scan = Scan.from_json(scan.to_json())
            next_list = sum(1 for page, _ in listed if page and page[-1] <= (scan.list_high or 0))
            below = scan.top_low
            stop_after = None
        use_top = not scan.top_done and (scan.list_done or rng.random() < 0.5)
        if scan.met:  # what lies above the search's first page
            above = sorted(i for i in ids if scan.top_high is None or i > scan.top_high)
            new = scan.take_tail_page(above[:TOP_PAGE], len(above) < TOP_PAGE)
        elif use_top:
            page, last = top_page(ids, below)
            new = scan.take_top_page(page, last)
            if page:
                below = min(page)
        else:
            page, last = listed[next_list]
            next_list += 1
            new = scan.take_list_page(page, last)
        judged += sorted(new)
        taken += 1
    return judged


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(0, 1500),
    seed=st.integers(0, 2**32),
    stop=st.one_of(st.none(), st.integers(0, 12)),
)
def test_every_company_is_judged_exactly_once(count: int, seed: int, stop: int | None) -> None:
    rng = random.Random(seed)
    ids = rng.sample(range(1, 10_000), count)
    judged = scan_all(ids, rng, stop_after=stop)
    assert sorted(judged) == sorted(ids)


def test_the_streams_meet_in_between_and_stop() -> None:
    ids = list(range(1001, 2001))  # 1,000 companies: 10 list pages or 5 search pages alone
    scan = Scan()
    pages = 0
    listed = list_pages(ids)
    below = None
    while not scan.met:
        scan.take_list_page(*listed[pages])
        page, last = top_page(ids, below)
        scan.take_top_page(page, last)
        below = min(page)
        pages += 1
    assert pages == 4  # 4 list pages (400) + 4 search pages (800): they met
    assert (scan.list_high, scan.top_low, scan.top_high) == (1400, 1401, 2000)
    assert not scan.done  # until a search above 2000 finds nothing new
    assert scan.take_tail_page([2001], last=True) == {2001}  # created since
    assert scan.done


def test_a_list_out_of_id_order_stops_the_search_and_reads_to_its_end() -> None:
    scan = Scan()
    assert scan.take_top_page([900, 800], last=False) == {900, 800}
    assert scan.take_list_page([5, 3, 7], last=False) == {3, 5, 7}  # not ascending
    assert scan.top_done
    assert not scan.list_done
    assert scan.take_top_page([700], last=False) == set()  # the search's pages are dropped
    # The list goes on to its end and judges what the search did not: below 800.
    assert scan.take_list_page([6, 850, 2, 799], last=True) == {2, 6, 799}
    assert scan.met
    assert scan.take_tail_page([901], last=True) == {901}  # above the search's first page
    assert scan.done


def test_the_search_reaching_the_bottom_ends_the_pass() -> None:
    scan = Scan()
    assert scan.take_top_page([30, 20, 10], last=True) == {10, 20, 30}
    assert scan.met
    assert scan.take_tail_page([30], last=True) == set()
    assert scan.done


def test_a_search_that_shows_nothing_leaves_the_list_to_read_alone() -> None:
    scan = Scan()
    scan.take_list_page([1, 2], last=False)
    assert scan.take_top_page([], last=True) == set()  # the index lags every company
    assert scan.top_done
    assert not scan.list_done
    assert scan.take_list_page([3, 4], last=True) == {3, 4}
    assert scan.done


def test_a_portal_the_list_reads_alone_needs_no_search() -> None:
    scan = Scan()
    assert scan.take_list_page([1, 2, 3], last=True) == {1, 2, 3}
    assert scan.done


def test_the_scan_survives_its_checkpoint() -> None:
    scan = Scan()
    scan.take_list_page([1, 2], last=False)
    scan.take_top_page([90, 80], last=False)
    restored = Scan.from_json(scan.to_json())
    assert restored == scan
    assert Scan.from_json({}) == Scan()


def test_a_run_beside_live_syncs_pauses_for_the_time_its_share_leaves() -> None:
    assert pause_after(0.2, 0.5) == pytest.approx(0.2)  # half the time: as long again
    assert pause_after(0.3, 0.25) == pytest.approx(0.9)
    assert pause_after(0.2, 1.0) == 0.0  # its own process (the CLI): no pause
