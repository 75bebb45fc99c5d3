"""Whether a rule set fits the WARP table it will read and write: every rule's column exists,
no rule's path lies inside another's (`contact` and `contact.email` would overwrite each
other), and each value type fits its column. Pure: the columns come from the caller."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import pairwise

from app.sync.core.rules import FieldRule, InvalidRuleError, ValueType

# Which column kinds (app/warp/columns.py) can hold a top-level value of each type; a path
# into a JSON column holds any of them.
FITTING_KINDS: Mapping[ValueType, frozenset[str]] = {
    ValueType.TEXT: frozenset({"text"}),
    ValueType.ENUMERATION: frozenset({"text"}),
    ValueType.DECIMAL: frozenset({"number", "text"}),
    ValueType.BOOLEAN: frozenset({"boolean"}),
}


def check_rules_fit_columns(rules: Iterable[FieldRule], columns: Mapping[str, str]) -> None:
    """Raise `InvalidRuleError` naming the first rule that does not fit `columns`."""
    rules = tuple(rules)
    paths = sorted(rule.warp_field for rule in rules)
    for shorter, longer in pairwise(paths):
        if longer.startswith(shorter + "."):
            raise InvalidRuleError(
                longer,
                f"{longer!r} lies inside {shorter!r}: the two rules would overwrite each other",
            )
    for rule in rules:
        column, _, inner = rule.warp_field.partition(".")
        kind = columns.get(column)
        if kind is None:
            raise InvalidRuleError(
                rule.warp_field, f"the WARP customers table has no column {column!r}"
            )
        if inner and kind != "json":
            raise InvalidRuleError(
                rule.warp_field, f"column {column!r} is not JSON, so it has no path {inner!r}"
            )
        if not inner and kind not in FITTING_KINDS[rule.value_type]:
            raise InvalidRuleError(
                rule.warp_field,
                f"a {rule.value_type.value} value does not fit column {column!r} ({kind})",
            )
