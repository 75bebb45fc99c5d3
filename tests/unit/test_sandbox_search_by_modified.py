"""The sandbox search's path for a window of modification times answers exactly what the
full scan answers.

The catch-up asks HubSpot what changed in a window (`hs_lastmodifieddate` GTE … LT …, sorted
by it); the sandbox reads only the companies its log of modifications puts in or after that
window (`CompanyStore.modified_between`) instead of every company. Both are run here on the
same parsed request and the same moment of the index, over stores built at random (creates,
updates, archives, restores, merges, out-of-order seeds, a clock that steps back), with
searches after each write.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from app.sandbox.clock import iso_from_ms
from app.sandbox.search import _modified_bounds, parse_search, run_search, scan_search
from app.sandbox.values import epoch_ms
from tests.unit.test_sandbox_search_by_id import (
    SOURCE,
    Clock,
    answer_features,
    moment_of,
    new_store,
    random_history,
)

MODIFIED = "hs_lastmodifieddate"
SORTS: list[Any] = [
    None,
    [MODIFIED],
    [{"propertyName": MODIFIED, "direction": "ASCENDING"}],
    [{"propertyName": MODIFIED, "direction": "DESCENDING"}],
    ["-name"],
]


def a_time(rng: random.Random, clock: Clock) -> str:
    """A moment near the store's recent history, as HubSpot takes it: epoch ms or ISO."""
    moment = clock.now - rng.choice((0, 1, 50, 700, 1000, rng.randint(0, 400_000)))
    return str(moment) if rng.random() < 0.8 else iso_from_ms(moment)


def random_body(rng: random.Random, clock: Clock) -> dict[str, Any]:
    filters: list[dict[str, Any]] = []
    for operator in rng.sample(["GTE", "GT", "LT", "LTE", "EQ", "BETWEEN"], rng.randint(1, 2)):
        spec = {"propertyName": MODIFIED, "operator": operator, "value": a_time(rng, clock)}
        if operator == "BETWEEN":
            spec["highValue"] = a_time(rng, clock)
        filters.append(spec)
    if rng.random() < 0.3:
        filters.append({"propertyName": "warp_credit_limit", "operator": "GT", "value": "1000"})
    body: dict[str, Any] = {
        "filterGroups": [{"filters": filters}],
        "limit": rng.choice((1, 7, 200)),
        "properties": [MODIFIED, "name"],
    }
    sorts = rng.choice(SORTS)
    if sorts is not None:
        body["sorts"] = sorts
    if rng.random() < 0.4:
        body["after"] = str(rng.choice((1, 7, 30)))
    return body


@pytest.mark.parametrize("seed", range(4))
def test_a_window_of_modification_times_answers_exactly_what_the_scan_answers(
    seed: int,
) -> None:
    rng = random.Random(seed)
    seen: Counter[str] = Counter()
    for store, clock in random_history(rng):
        for _ in range(3):
            request = parse_search(store.registry, random_body(rng, clock), cap=10_000)
            as_of_ms = moment_of(rng, clock)
            bounds = _modified_bounds(request.groups)
            assert bounds is not None
            among = store.modified_between(*bounds, as_of_ms)
            fast = scan_search(store, request, as_of_ms=as_of_ms, among=among)
            slow = scan_search(store, request, as_of_ms=as_of_ms)
            assert json.dumps(fast) == json.dumps(slow)
            features = [
                *answer_features(fast, store, as_of_ms),
                ("narrowed", len(among) < sum(1 for _ in store.active())),
            ]
            seen.update(name for name, present in features if present)
    assert set(seen) == {"results", "empty", "paging", "narrowed", "older"}, seen


def test_a_window_reads_only_the_companies_modified_in_or_after_it() -> None:
    store, clock = new_store()
    for n in range(100):
        clock.now += 1000
        store.create({"name": f"Company {n}"}, SOURCE)
    since = clock.now - 4_500  # the last five companies
    body = {
        "filterGroups": [{"filters": [{"propertyName": MODIFIED, "operator": "GTE",
                                       "value": str(since)}]}],
        "sorts": [{"propertyName": MODIFIED, "direction": "ASCENDING"}],
    }  # fmt: skip
    request = parse_search(store.registry, body, cap=10_000)
    assert len(store.modified_between(since, 2**63 - 1, None)) == 5
    answer = run_search(store, body)
    assert answer["total"] == 5
    assert answer == scan_search(store, request)


def test_other_groups_or_no_bound_keep_the_scan() -> None:
    store, clock = new_store()
    store.create({"name": "Acme"}, SOURCE)
    two_groups = [
        {"filters": [{"propertyName": MODIFIED, "operator": "GTE", "value": str(clock.now)}]},
        {"filters": [{"propertyName": "name", "operator": "EQ", "value": "acme"}]},
    ]
    assert _modified_bounds(two_groups) is None
    no_bound = [{"filters": [{"propertyName": MODIFIED, "operator": "HAS_PROPERTY"}]}]
    assert _modified_bounds(no_bound) is None
    assert run_search(store, {"filterGroups": no_bound})["total"] == 1


@pytest.mark.parametrize("seed", range(3))
def test_the_system_datetimes_compare_as_their_text_would(seed: int) -> None:
    """Searches compare `createdate` and `hs_lastmodifieddate` as milliseconds, not through
    the text a company shows: both must order and match alike."""
    rng = random.Random(seed)
    moments = [rng.randint(0, 4_102_444_800_000) for _ in range(2_000)]
    moments += [base + n for base in (0, 1_800_000_000_000) for n in range(1_001)]
    for moment in moments:  # 274087259715 read back as ...714 once (a float's rounding)
        assert epoch_ms(iso_from_ms(moment)) == moment
