"""CRM search over the sandbox's companies: filter groups, one sort, offset paging, the cap.

HubSpot ORs filter groups and ANDs the filters inside each; it compares by property type
(numbers numerically, datetimes as instants, text case-insensitively), pages with an offset
cursor, and refuses to page past 10,000 results. It takes at most 5 groups of at most 6
filters, 18 filters in all, and a `limit` from 1 to 200.

A keyset paging through every company (`hs_object_id` LT the last id, sorted by id) is
answered from the store's sorted ids, in milliseconds at 100,000 companies where the scan of
every company takes ~200 ms; it answers exactly what the scan would. A search bounded by
`hs_lastmodifieddate` (the catch-up's: what changed in a window) reads only the companies the
store's log of modifications puts in or after that window, then filters them as the scan does,
so it too answers exactly what the scan would.
"""

from __future__ import annotations

import bisect
import fnmatch
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.clock import now_ms
from app.sandbox.errors import JsonDict, bad_request
from app.sandbox.fields import (
    object_body,
    optional_enum,
    optional_int,
    optional_string,
    required_string,
    string_list,
)
from app.sandbox.properties import PropertyDef, PropertyRegistry
from app.sandbox.store import Company, CompanyStore
from app.sandbox.values import epoch_ms

MAX_LIMIT = 200
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
_QUERY_PROPERTIES = ("name", "domain", "website", "phone")
_DIRECTIONS = ("ASCENDING", "DESCENDING")
_OPERATORS = ("BETWEEN", "CONTAINS_TOKEN", "EQ", "GT", "GTE", "HAS_PROPERTY", "IN", "LT", "LTE",
              "NEQ", "NOT_CONTAINS_TOKEN", "NOT_HAS_PROPERTY", "NOT_IN")  # fmt: skip

Predicate = Callable[[Company], bool]


def run_search(
    store: CompanyStore,
    body: object,
    *,
    cap: int = 10_000,
    null_for_unset: bool = False,
    index_delay_ms: int = 0,
) -> JsonDict:
    """Answer a search; with `index_delay_ms`, as of that long ago (HubSpot's index lag).
    A search by record id alone takes the fast path, any other reads every company."""
    request = parse_search(store.registry, body, cap=cap)
    as_of_ms = now_ms() - index_delay_ms if index_delay_ms > 0 else None
    answer = search_by_id_range(store, request, null_for_unset=null_for_unset, as_of_ms=as_of_ms)
    if answer is None:
        modified = _modified_bounds(request.groups)
        companies = None if modified is None else store.modified_between(*modified, as_of_ms)
        answer = scan_search(
            store, request, null_for_unset=null_for_unset, as_of_ms=as_of_ms, among=companies
        )
    return answer


@dataclass(frozen=True)
class SearchRequest:
    """A search body past every check made before a company is read (sorts are checked
    when sorting); `groups` are the filter groups as sent, `predicates` the same compiled."""

    limit: int
    offset: int
    cap: int
    groups: list[Any]
    predicates: list[list[Predicate]]
    query: str | None
    properties: list[str] | None
    sorts: object


def parse_search(registry: PropertyRegistry, body: object, *, cap: int) -> SearchRequest:
    """Check a search body, refusing its first fault with a 400: one order for both paths."""
    body = object_body(body)
    limit = optional_int(body, "limit", 10)
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    after = optional_string(body, "after") or "0"
    if not after.isascii() or not after.isdigit():
        raise bad_request(f"after must be a paging cursor of a previous page, got {after!r}",
                          after=[after])  # fmt: skip
    offset = int(after)
    if offset >= cap:
        raise bad_request(
            f"Search results are limited to {cap} per query; "
            f"after={offset} is past the end. Narrow the query instead of paging further.",
            after=[str(offset)],
        )
    groups = body.get("filterGroups", [])
    if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
        raise bad_request(f"At most {MAX_GROUPS} filterGroups are allowed")
    predicates = [_group(registry, group) for group in groups]
    count = sum(len(group) for group in predicates)
    if count > MAX_FILTERS:
        raise bad_request(
            f"A search takes at most {MAX_FILTERS} filters in all, got {count}",
            filters=[str(count)],
        )
    return SearchRequest(
        limit=limit,
        offset=offset,
        cap=cap,
        groups=groups,
        predicates=predicates,
        query=optional_string(body, "query"),
        properties=registry.known(string_list(body, "properties")),
        sorts=_sorts(body.get("sorts", [])),
    )


def _sorts(raw: object) -> list[Any]:
    """`sorts` as typed: an array of property names (`"-name"` descending) or of
    {propertyName, direction}; its length and properties are checked when sorting."""
    if not isinstance(raw, list):
        raise bad_request("`sorts` must be an array", sorts=[str(raw)])
    for spec in raw:
        if isinstance(spec, str):
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("propertyName"), str):
            raise bad_request("A sort is a property name or {propertyName, direction}")
        direction = spec.get("direction", "ASCENDING")
        if not isinstance(direction, str) or direction.upper() not in _DIRECTIONS:
            raise bad_request(
                f"A sort's direction is ASCENDING or DESCENDING, got {direction!r}",
                direction=[str(direction)],
            )
    return raw


def scan_search(
    store: CompanyStore,
    request: SearchRequest,
    *,
    null_for_unset: bool = False,
    as_of_ms: int | None = None,
    among: list[Company] | None = None,
) -> JsonDict:
    """Any search: every company not archived (or those of `among`, a superset of the
    matches), as of `as_of_ms` when given, through the filters, then all the matches sorted."""
    indexed = store.active() if among is None else iter(among)
    if as_of_ms is not None:
        indexed = (view for c in indexed if (view := c.as_of(as_of_ms)) is not None)
    predicates = request.predicates
    matches = [
        company
        for company in indexed
        if (not predicates or any(all(p(company) for p in group) for group in predicates))
        and _matches_query(company, request.query)
    ]
    _sort(store.registry, matches, request.sorts)
    page = matches[request.offset : min(request.offset + request.limit, request.cap)]
    return _answer(request, page, len(matches), null_for_unset)


def search_by_id_range(
    store: CompanyStore,
    request: SearchRequest,
    *,
    null_for_unset: bool = False,
    as_of_ms: int | None = None,
) -> JsonDict | None:
    """`scan_search`'s answer to a search by record id alone, or None for any other search.

    A keyset paging through every company (`hs_object_id` LT the last id seen, sorted by
    `hs_object_id`) would otherwise read all 100,000 companies for each page of 200. Here
    the range comes from bisecting the store's sorted ids, the total from subtracting the
    companies the index does not show yet (created after `as_of_ms`), and only the page,
    with the offset before it, is read and seen as of `as_of_ms`.
    """
    bounds = _id_bounds(request.groups)
    descending = _id_order(request.sorts)
    if request.query or bounds is None or descending is None:
        return None
    ids = store.live_ids()
    low, high = _positions(ids, bounds)
    hidden = 0
    if as_of_ms is not None and low < high:
        recent = store.live_created_after(as_of_ms)
        hidden = sum(1 for company_id in recent if ids[low] <= company_id <= ids[high - 1])
    positions = range(high - 1, low - 1, -1) if descending else range(low, high)
    stop = min(request.offset + request.limit, request.cap)
    offset = request.offset
    if not hidden:  # every company in range is seen: the offset is a position
        positions, offset, stop = positions[offset:stop], 0, stop - offset
    visible = (
        view
        for position in positions
        if (view := _seen(store.by_id(ids[position]), as_of_ms)) is not None
    )
    page = list(itertools.islice(visible, offset, max(offset, stop)))
    return _answer(request, page, high - low - hidden, null_for_unset)


def _answer(
    request: SearchRequest, page: list[Company], total: int, null_for_unset: bool
) -> JsonDict:
    """HubSpot's answer: the page, the total, and the offset cursor when more follow."""
    result: JsonDict = {
        "total": total,
        "results": [
            company.to_json(request.properties, null_for_unset=null_for_unset) for company in page
        ],
    }
    if request.offset + request.limit < total:
        result["paging"] = {"next": {"after": str(request.offset + request.limit)}}
    return result


# -- the range of a search by id --------------------------------------------------------

_ID = "hs_object_id"
_ID_OPERATORS = ("EQ", "GT", "GTE", "LT", "LTE")


def _id_bounds(groups: list[Any]) -> list[tuple[str, Decimal]] | None:
    """The (operator, value) filters of a search by id alone: at most one group, each of
    its filters a comparison of `hs_object_id` with a finite number (infinities keep the
    scan, whose comparisons decide what they mean). None for any other filters. The values
    were checked by `parse_search`, so they parse and none is NaN."""
    if len(groups) > 1:
        return None
    filters = groups[0].get("filters", []) if groups else []
    bounds = []
    for spec in filters:
        if str(spec["propertyName"]) != _ID or str(spec["operator"]) not in _ID_OPERATORS:
            return None
        value = Decimal(str(spec.get("value")))
        if not value.is_finite():
            return None
        bounds.append((str(spec["operator"]), value))
    return bounds


def _id_order(sorts: object) -> bool | None:
    """Whether a search by id goes DESCENDING (no sort is id order, ascending); None when
    it sorts by another property or the sort is malformed (the scan refuses it)."""
    if not isinstance(sorts, list) or len(sorts) > 1:
        return None
    if not sorts:
        return False
    spec = _sort_spec(sorts[0])
    return spec[1] if spec is not None and spec[0] == _ID else None


def _positions(ids: Sequence[int], bounds: list[tuple[str, Decimal]]) -> tuple[int, int]:
    """The slice `ids[low:high]` of the ids every bound admits (empty: low == high)."""
    low, high = 0, len(ids)
    for operator, value in bounds:
        first_from, first_past = _bisect(ids, value)
        admitted = {
            "EQ": (first_from, first_past),
            "GT": (first_past, len(ids)),
            "GTE": (first_from, len(ids)),
            "LT": (0, first_from),
            "LTE": (0, first_past),
        }[operator]
        low, high = max(low, admitted[0]), min(high, admitted[1])
    return low, max(low, high)


def _bisect(ids: Sequence[int], value: Decimal) -> tuple[int, int]:
    """The positions of the first id >= `value` and of the first id > `value`.

    The ids are integers, so `>= 7.5` is `>= 8` and `> 7.5` is `> 7`; the value is clamped
    to just outside the ids first, so `1e999999` does not become an integer of a million
    digits.
    """
    if not ids:
        return 0, 0
    clamped = min(max(value, Decimal(ids[0] - 1)), Decimal(ids[-1] + 1))
    first_from = bisect.bisect_left(ids, math.ceil(clamped))
    return first_from, bisect.bisect_right(ids, math.floor(clamped))


# -- the window of a search by modification time ---------------------------------------

_MODIFIED = "hs_lastmodifieddate"


def _modified_bounds(groups: list[Any]) -> tuple[int, int] | None:
    """[low, high] in epoch milliseconds that every match's `hs_lastmodifieddate` lies in,
    from the filters on it of the one filter group (ANDed with any others); None when there
    are other groups or no such bound. The values were checked by `parse_search`."""
    if len(groups) != 1:
        return None
    low, high = None, None
    for spec in groups[0].get("filters", []):
        if str(spec["propertyName"]) != _MODIFIED:
            continue
        operator = str(spec["operator"])
        if operator in ("GT", "GTE", "EQ", "BETWEEN"):
            value = epoch_ms(str(spec.get("value")))
            low = value if low is None else max(low, value)
        if operator in ("LT", "LTE", "EQ"):
            value = epoch_ms(str(spec.get("value")))
            high = value if high is None else min(high, value)
        if operator == "BETWEEN":
            top = epoch_ms(str(spec.get("highValue")))
            high = top if high is None else min(high, top)
    if low is None and high is None:
        return None
    return (low if low is not None else -(2**63), high if high is not None else 2**63 - 1)


def _seen(company: Company, as_of_ms: int | None) -> Company | None:
    return company if as_of_ms is None else company.as_of(as_of_ms)


def _group(registry: PropertyRegistry, group: object) -> list[Predicate]:
    filters = group.get("filters") if isinstance(group, dict) else None
    if not isinstance(filters, list) or len(filters) > MAX_FILTERS_PER_GROUP:
        raise bad_request(
            f"Each filter group needs `filters`, an array of at most {MAX_FILTERS_PER_GROUP}"
        )
    return [_predicate(registry, f) for f in filters]


def _predicate(registry: PropertyRegistry, spec: object) -> Predicate:
    if not isinstance(spec, dict):
        raise bad_request("Each filter needs a propertyName and an operator")
    name = required_string(spec, "propertyName", "Each filter")
    operator = optional_enum(spec, "operator", _OPERATORS)
    if operator is None:
        raise bad_request("Each filter needs a propertyName and an operator")
    optional_string(spec, "value")
    optional_string(spec, "highValue")
    string_list(spec, "values")
    prop = registry.get(name)
    if prop is None:
        raise bad_request(f"Property {name!r} does not exist", propertyName=[name])
    key = _key_for(prop)
    millis = _MILLIS.get(name)

    def typed(raw: object) -> Any:
        try:
            value = key(str(raw))
        except (ValueError, InvalidOperation):
            raise bad_request(f"{raw!r} is not a valid value for {name}") from None
        if isinstance(value, Decimal) and value.is_nan():  # NaN compares with nothing: a 400
            raise bad_request(f"{raw!r} is not a valid value for {name}")
        return value

    if operator == "HAS_PROPERTY":
        return lambda c: c.value(name) is not None
    if operator == "NOT_HAS_PROPERTY":
        return lambda c: c.value(name) is None
    if operator in ("IN", "NOT_IN"):
        values = spec.get("values") or []
        if not isinstance(values, list):
            raise bad_request(f"`values` of an {operator} filter must be an array")
        wanted = {typed(v) for v in values}
        if operator == "IN":
            return lambda c: (v := c.value(name)) is not None and key(v) in wanted
        return lambda c: (v := c.value(name)) is None or key(v) not in wanted
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(spec.get("value", "")).lower()
        positive = operator == "CONTAINS_TOKEN"
        return lambda c: _contains(c.value(name), pattern) == positive
    if operator == "BETWEEN":
        low, high = typed(spec.get("value")), typed(spec.get("highValue"))
        if millis is not None:
            return lambda c: low <= millis(c) <= high
        return lambda c: (v := c.value(name)) is not None and low <= key(v) <= high
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "EQ": lambda a, b: a == b,
        "GT": lambda a, b: a > b,
        "GTE": lambda a, b: a >= b,
        "LT": lambda a, b: a < b,
        "LTE": lambda a, b: a <= b,
    }
    if operator == "NEQ":
        target = typed(spec.get("value"))
        return lambda c: (v := c.value(name)) is None or key(v) != target
    if operator not in comparisons:
        raise bad_request(f"Unsupported filter operator {operator!r}")
    compare, target = comparisons[operator], typed(spec.get("value"))
    if millis is not None:
        return lambda c: compare(millis(c), target)
    return lambda c: (v := c.value(name)) is not None and compare(key(v), target)


# The system datetimes every company has, compared as the milliseconds they are rather than
# through their text (`epoch_ms(iso_from_ms(ms)) == ms`): a search of the catch-up's window
# compares one per company it reads.
_MILLIS: dict[str, Callable[[Company], int]] = {
    "createdate": lambda company: company.created_ms,
    "hs_lastmodifieddate": lambda company: company.updated_ms,
}


def _key_for(prop: PropertyDef) -> Callable[[str], Any]:
    if prop.type == "number":
        return Decimal
    if prop.type in ("datetime", "date"):
        return epoch_ms
    return str.lower


def _contains(value: str | None, pattern: str) -> bool:
    if value is None:
        return False
    tokens = value.lower().split()
    return any(fnmatch.fnmatchcase(t, pattern) for t in tokens) or fnmatch.fnmatchcase(
        value.lower(), pattern
    )


def _matches_query(company: Company, query: object) -> bool:
    if not query:
        return True
    needle = str(query).lower()
    return any(needle in (company.value(n) or "").lower() for n in _QUERY_PROPERTIES)


def _sort(registry: PropertyRegistry, companies: list[Company], sorts: object) -> None:
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise bad_request("At most one sort is allowed")
    if not sorts:
        companies.sort(key=lambda c: int(c.id))
        return
    spec = _sort_spec(sorts[0])
    if spec is None:
        raise bad_request("A sort is a property name or {propertyName, direction}")
    name, descending = spec
    prop = registry.get(name)
    if prop is None:
        raise bad_request(f"Property {name!r} does not exist", propertyName=[name])
    key = _key_for(prop)
    companies.sort(key=lambda c: int(c.id))
    if (millis := _MILLIS.get(name)) is not None:  # every company has one
        companies.sort(key=millis, reverse=descending)
        return
    present = [c for c in companies if c.value(name) is not None]
    absent = [c for c in companies if c.value(name) is None]
    present.sort(key=lambda c: key(c.value(name) or ""), reverse=descending)
    companies[:] = present + absent


def _sort_spec(spec: object) -> tuple[str, bool] | None:
    """(property, descending) of a sort: `"name"`, `"-name"` or {propertyName, direction}."""
    if isinstance(spec, str):
        return spec.lstrip("-"), spec.startswith("-")
    if isinstance(spec, dict) and "propertyName" in spec:
        direction = str(spec.get("direction", "ASCENDING")).upper()
        return str(spec["propertyName"]), direction == "DESCENDING"
    return None
