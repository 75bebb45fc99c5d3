"""CRM search over the sandbox's companies: filter groups, one sort, offset paging, the cap.

HubSpot ORs filter groups and ANDs the filters inside each; it compares by property type
(numbers numerically, datetimes as instants, text case-insensitively), pages with an offset
cursor, and refuses to page past 10,000 results. It takes at most 5 groups of at most 6
filters, 18 filters in all, and a `limit` from 1 to 200.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.clock import now_ms
from app.sandbox.errors import JsonDict, bad_request
from app.sandbox.properties import PropertyDef, PropertyRegistry
from app.sandbox.request_io import int_value, object_body, optional_string, string_list
from app.sandbox.store import Company, CompanyStore
from app.sandbox.values import epoch_ms

MAX_LIMIT = 200
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
_QUERY_PROPERTIES = ("name", "domain", "website", "phone")


def run_search(
    store: CompanyStore,
    body: object,
    *,
    cap: int = 10_000,
    null_for_unset: bool = False,
    index_delay_ms: int = 0,
) -> JsonDict:
    """Answer a search; with `index_delay_ms`, as of that long ago (HubSpot's index lag)."""
    body = object_body(body)
    limit = int_value(body.get("limit"), "limit", 10)
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    offset = int_value(body.get("after") if body.get("after") != "" else None, "after", 0)
    if offset < 0:
        raise bad_request(f"after must not be negative, got {offset}", after=[str(offset)])
    if offset >= cap:
        raise bad_request(
            f"Search results are limited to {cap} per query; "
            f"after={offset} is past the end. Narrow the query instead of paging further.",
            after=[str(offset)],
        )
    groups = body.get("filterGroups", [])
    if groups is None:
        groups = []
    if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
        raise bad_request(f"At most {MAX_GROUPS} filterGroups are allowed")
    predicates = [_group(store.registry, group) for group in groups]
    count = sum(len(group) for group in predicates)
    if count > MAX_FILTERS:
        raise bad_request(
            f"A search takes at most {MAX_FILTERS} filters in all, got {count}",
            filters=[str(count)],
        )
    query = optional_string(body, "query")
    properties = string_list(body, "properties")
    indexed = store.active()
    if index_delay_ms > 0:
        moment = now_ms() - index_delay_ms
        indexed = (view for c in store.active() if (view := c.as_of(moment)) is not None)
    matches = [
        company
        for company in indexed
        if (not predicates or any(all(p(company) for p in group) for group in predicates))
        and _matches_query(company, query)
    ]
    _sort(store.registry, matches, body.get("sorts") if body.get("sorts") is not None else [])
    page = matches[offset : min(offset + limit, cap)]
    result: JsonDict = {
        "total": len(matches),
        "results": [company.to_json(properties, null_for_unset=null_for_unset) for company in page],
    }
    if offset + limit < len(matches):
        result["paging"] = {"next": {"after": str(offset + limit)}}
    return result


Predicate = Callable[[Company], bool]


def _group(registry: PropertyRegistry, group: object) -> list[Predicate]:
    filters = group.get("filters", []) if isinstance(group, dict) else None
    if not isinstance(filters, list) or len(filters) > MAX_FILTERS_PER_GROUP:
        raise bad_request(f"Each filter group takes a list of at most {MAX_FILTERS_PER_GROUP}")
    return [_predicate(registry, f) for f in filters]


def _predicate(registry: PropertyRegistry, spec: object) -> Predicate:
    if not isinstance(spec, dict) or "propertyName" not in spec or "operator" not in spec:
        raise bad_request("Each filter needs a propertyName and an operator")
    name, operator = str(spec["propertyName"]), str(spec["operator"])
    prop = registry.get(name)
    if prop is None:
        raise bad_request(f"Property {name!r} does not exist", propertyName=[name])
    key = _key_for(prop)

    def typed(raw: object) -> Any:
        try:
            return key(str(raw))
        except (ValueError, InvalidOperation):
            raise bad_request(f"{raw!r} is not a valid value for {name}") from None

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
    return lambda c: (v := c.value(name)) is not None and compare(key(v), target)


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
    spec = sorts[0]
    if isinstance(spec, str):
        name, descending = spec.lstrip("-"), spec.startswith("-")
    elif isinstance(spec, dict) and "propertyName" in spec:
        name = str(spec["propertyName"])
        descending = str(spec.get("direction", "ASCENDING")).upper() == "DESCENDING"
    else:
        raise bad_request("A sort is a property name or {propertyName, direction}")
    prop = registry.get(name)
    if prop is None:
        raise bad_request(f"Property {name!r} does not exist", propertyName=[name])
    key = _key_for(prop)
    companies.sort(key=lambda c: int(c.id))
    present = [c for c in companies if c.value(name) is not None]
    absent = [c for c in companies if c.value(name) is None]
    present.sort(key=lambda c: key(c.value(name) or ""), reverse=descending)
    companies[:] = present + absent
