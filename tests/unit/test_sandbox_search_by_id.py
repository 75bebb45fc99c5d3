"""The sandbox search's fast path by record id answers exactly what the full scan answers.

A reconciliation pages through every company with keyset searches on `hs_object_id`; the
sandbox answers those from its sorted ids (`search_by_id_range`) instead of reading every
company (`scan_search`). Both are called here on the same parsed request and the same
moment of the index, over stores built at random: creates, updates, archives, restores,
merges and out-of-order seeds, with searches after each write so every cached index is used
after every kind of write.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from app.sandbox.errors import ApiError
from app.sandbox.properties import PropertyRegistry
from app.sandbox.search import (
    SearchRequest,
    parse_search,
    run_search,
    scan_search,
    search_by_id_range,
)
from app.sandbox.store import CompanyStore, WriteSource

START_MS = 1_800_000_000_000
SOURCE = WriteSource("INTEGRATION", "1")
OPERATORS = ("EQ", "GT", "GTE", "LT", "LTE")
SORTS: list[Any] = [
    None,
    [],
    ["hs_object_id"],
    ["-hs_object_id"],
    [{"propertyName": "hs_object_id"}],
    [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
    [{"propertyName": "hs_object_id", "direction": "DESCENDING"}],
    [{"propertyName": "hs_object_id", "direction": "descending"}],
]
PROPERTIES: list[Any] = [
    None,
    ["name"],
    ["name", "warp_ban", "warp_credit_limit"],
    ["warp_credit_limit", "hs_merged_object_ids", "domain"],
]


class Clock:
    """The store's clock, moved by the test: creation and change times it chooses."""

    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now


def new_store() -> tuple[CompanyStore, Clock]:
    registry = PropertyRegistry()
    for name, type_, field_type, unique in (
        ("warp_ban", "string", "text", True),
        ("warp_credit_limit", "number", "number", False),
    ):
        registry.create({"name": name, "label": name, "type": type_, "fieldType": field_type,
                         "groupName": "companyinformation", "hasUniqueValue": unique})  # fmt: skip
    clock = Clock()
    return CompanyStore(registry, emit=lambda event: None, clock=clock), clock


def random_write(rng: random.Random, store: CompanyStore, serial: int) -> None:
    active = list(store.active())
    archived = list(store.all(archived=True))
    kind = rng.choices(
        ["create", "update", "archive", "restore", "merge", "seed"], [8, 4, 1, 1, 1, 1]
    )[0]
    if kind == "update" and active:
        store.update(rng.choice(active).id, {"name": f"Renamed {serial}",
                                             "warp_credit_limit": str(serial)}, SOURCE)  # fmt: skip
    elif kind == "archive" and active:
        store.archive(rng.choice(active).id, SOURCE)
    elif kind == "restore" and archived:
        store.restore(rng.choice(archived).id, SOURCE)
    elif kind == "merge" and len(active) >= 2:
        primary, other = rng.sample(active, 2)
        store.merge(primary.id, other.id, SOURCE)
    elif kind == "seed":  # below the created ids and in any order, as the demo's refill does
        store.seed(str(1000 - serial), {"name": f"Seeded {serial}"}, SOURCE)
    else:
        values = {"name": f"Company {serial}", "warp_ban": f"ZT-{serial}"}
        if rng.random() < 0.7:
            values["warp_credit_limit"] = str(rng.randint(0, 5000))
        store.create(values, SOURCE)


def random_history(rng: random.Random, writes: int = 400) -> Iterator[tuple[CompanyStore, Clock]]:
    """A store built by random writes, yielded after each one; its clock moves by steps the
    test chooses, and sometimes back, as a wall clock may."""
    store, clock = new_store()
    for serial in range(writes):
        clock.now += rng.choice((0, 1, 50, 1000, -700))
        random_write(rng, store, serial)
        yield store, clock


def random_value(rng: random.Random, ids: list[int]) -> str:
    """A filter value as HubSpot types it, a string (a JSON number is refused: a 400)."""
    near = rng.choice(ids) if ids else 1001
    return rng.choice([
        str(near), str(near + rng.choice((-1, 1))), f"{near}.5", f"{near - 1}.999",
        f"{near / 1000}e3", f" {near} ", str(rng.randint(-5, 3000)), "-7", "0", "1e999999",
        "-1e999999", "1E-3",
    ])  # fmt: skip


def random_body(rng: random.Random, ids: list[int], cap: int) -> dict[str, Any]:
    filters = [
        {"propertyName": "hs_object_id", "operator": rng.choice(OPERATORS),
         "value": random_value(rng, ids)}
        for _ in range(rng.choice((0, 1, 1, 1, 2, 3)))
    ]  # fmt: skip
    """A well-typed search body (wrong types are refused before either path runs)."""
    body: dict[str, Any] = {"limit": rng.choice((1, 2, 7, 50, 200, rng.randint(1, 200)))}
    properties = rng.choice(PROPERTIES)
    if properties is not None:
        body["properties"] = properties
    groups = rng.choice(("absent", "empty", "no-filters", "one", "one", "one"))
    if groups != "absent":
        body["filterGroups"] = {"empty": [], "no-filters": [{"filters": []}]}.get(
            groups, [{"filters": filters}]
        )
    sorts = rng.choice(SORTS)
    if sorts is not None:
        body["sorts"] = sorts
    offset = rng.choice((0, 0, 1, rng.randint(0, len(ids) + 5), cap - 1))
    after = rng.choice((None, "", str(min(offset, cap - 1))))
    if after is not None:
        body["after"] = after
    return body


def moment_of(rng: random.Random, clock: Clock) -> int | None:
    """No index lag, or one that hides some of the newest companies and changes."""
    return rng.choice((None, clock.now, clock.now - rng.randint(0, 400_000)))


@pytest.mark.parametrize("seed", range(4))
def test_search_by_id_range_answers_exactly_what_the_scan_answers(seed: int) -> None:
    rng = random.Random(seed)
    seen: Counter[str] = Counter()
    for store, clock in random_history(rng):
        ids = sorted(int(c.id) for c in store.active())
        for _ in range(3):
            cap = rng.choice((10_000, 10_000, 40))
            request = parse_search(store.registry, random_body(rng, ids, cap), cap=cap)
            as_of_ms = moment_of(rng, clock)
            null_for_unset = rng.random() < 0.5
            fast = search_by_id_range(
                store, request, null_for_unset=null_for_unset, as_of_ms=as_of_ms
            )
            slow = scan_search(store, request, null_for_unset=null_for_unset, as_of_ms=as_of_ms)
            assert fast is not None
            assert json.dumps(fast) == json.dumps(slow)
            features = _features(fast, request, as_of_ms, store)
            seen.update(name for name, present in features if present)
    assert set(seen) == {"results", "empty", "paging", "capped", "hidden", "older"}, seen


def _features(
    answer: dict[str, Any], request: SearchRequest, as_of_ms: int | None, store: CompanyStore
) -> list[tuple[str, bool]]:
    """What an answer exercised, so the random searches are known to cover each case."""
    shown = len(answer["results"])
    return [
        *answer_features(answer, store, as_of_ms),
        ("capped", request.offset + shown == request.cap < answer["total"]),
        ("hidden", as_of_ms is not None and bool(store.live_created_after(as_of_ms))),
    ]


def answer_features(
    answer: dict[str, Any], store: CompanyStore, as_of_ms: int | None
) -> list[tuple[str, bool]]:
    """Whether an answer has results, none, a next page, and a company shown as it was
    before a later change (the index's lag)."""
    shown = [store.by_id(int(r["id"])) for r in answer["results"]]
    return [
        ("results", bool(shown)),
        ("empty", answer["total"] == 0),
        ("paging", "paging" in answer),
        ("older", as_of_ms is not None and any(c.updated_ms > as_of_ms for c in shown)),
    ]


def test_an_invalid_id_is_refused_as_before() -> None:
    store, _ = new_store()
    store.create({"name": "Acme"}, SOURCE)
    filters = [{"propertyName": "hs_object_id", "operator": "LT", "value": "12a"}]
    for extra in ([], [{"propertyName": "name", "operator": "EQ", "value": "acme"}]):
        body = {"filterGroups": [{"filters": [*filters, *extra]}]}
        with pytest.raises(ApiError) as refused:
            run_search(store, body, index_delay_ms=2000)
        assert refused.value.status == 400
        assert refused.value.message == "'12a' is not a valid value for hs_object_id"


def _by_id(operator: str, value: object) -> dict[str, Any]:
    return {"propertyName": "hs_object_id", "operator": operator, "value": value}


@pytest.mark.parametrize(
    ("body", "names"),
    [
        pytest.param(
            {"filterGroups": [{"filters": [_by_id("GT", "1001"),
                                           {"propertyName": "name", "operator": "EQ",
                                            "value": "gamma"}]}]},
            ["Gamma"],
            id="another-property-filtered",
        ),
        pytest.param(
            {"query": "acme", "sorts": ["-hs_object_id"]}, ["acme east", "Acme"], id="query"
        ),
        pytest.param(
            {"filterGroups": [{"filters": [_by_id("LT", "1004")]}], "sorts": ["-name"]},
            ["Gamma", "Beta", "Acme"],
            id="sorted-by-name",
        ),
        pytest.param(
            {"filterGroups": [{"filters": [_by_id("EQ", "1001")]},
                              {"filters": [_by_id("EQ", "1003")]}]},
            ["Acme", "Gamma"],
            id="two-groups",
        ),
        pytest.param(
            {"filterGroups": [{"filters": [_by_id("NEQ", "1002")]}]},
            ["Acme", "Gamma", "acme east"],
            id="not-equal",
        ),
    ],
)  # fmt: skip
def test_other_searches_keep_the_scan(body: dict[str, Any], names: list[str]) -> None:
    store, _ = new_store()
    for name in ("Acme", "Beta", "Gamma", "acme east"):  # ids 1001 to 1004
        store.create({"name": name}, SOURCE)
    body = {**body, "properties": ["name"]}
    request = parse_search(store.registry, body, cap=10_000)
    assert search_by_id_range(store, request) is None
    answer = run_search(store, body)
    assert answer == scan_search(store, request)
    assert [r["properties"]["name"] for r in answer["results"]] == names
    assert answer["total"] == len(names)


@pytest.mark.parametrize("operator", ["EQ", "LT", "GTE"])
def test_a_number_that_is_not_a_number_is_refused(operator: str) -> None:
    store, _ = new_store()
    store.create({"name": "Acme"}, SOURCE)  # a comparison with NaN raised: a 500 before
    with pytest.raises(ApiError, match="not a valid value for hs_object_id"):
        run_search(store, {"filterGroups": [{"filters": [_by_id(operator, "NaN")]}]})


def test_a_malformed_sort_by_id_is_refused_as_before() -> None:
    store, _ = new_store()
    store.create({"name": "Acme"}, SOURCE)
    with pytest.raises(ApiError, match="A sort is a property name"):
        run_search(store, {"sorts": [{"direction": "DESCENDING"}]})


def test_the_list_pages_seeded_companies_in_id_order() -> None:
    # The demo refills a restarted sandbox by seeding companies under their own ids, in
    # whatever order its links come; the list API must still page them all in id order.
    store, _ = new_store()
    store.create({"name": "First"}, SOURCE)  # 1001, and the list's id order is built
    assert [c.id for c in store.page(None, 10)[0]] == ["1001"]
    for company_id in ("5000", "2000", "3000"):
        store.seed(company_id, {"name": f"Seeded {company_id}"}, SOURCE)
    first, after = store.page(None, 2)
    second, last = store.page(after, 2)
    assert [c.id for c in first + second] == ["1001", "2000", "3000", "5000"]
    assert last is None
