"""The sync scope: which WARP customers hubsync syncs at all.

A scope is a list of conditions on the customer's own columns, all of which must hold
(`status not_in [CLOSED]`, `customer_type in [POSTPAID, RESELLER]`). A small structured
form rather than free SQL: every path (jobs, webhooks, catch-up, reconciliation, preview)
applies it in Python to the row it already read, so it can never disagree with itself or
inject anything into WARP's queries. An empty scope admits everyone (the default).

Values are compared as text (`str(value)`), so `credit_limit in [0]` and a boolean column's
`True` read the way they are shown. A NULL column matches no `in` list and every `not_in`
list: "not CLOSED" includes customers without a status. Pure: the columns to check against
come from the caller (app/warp/columns.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.errors import HubsyncError

MAX_CONDITIONS = 20
MAX_VALUES = 200
MAX_VALUE_CHARS = 256
# Column kinds (app/warp/columns.py) whose values compare as text; JSON and dates do not.
COMPARABLE_KINDS = frozenset({"text", "number", "boolean"})


class InvalidScopeError(HubsyncError, ValueError):
    """A scope hubsync refuses to store; `field` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Op(StrEnum):
    IN = "in"
    NOT_IN = "not_in"


@dataclass(frozen=True)
class Condition:
    column: str
    op: Op
    values: tuple[str, ...]

    def holds(self, customer: Mapping[str, Any]) -> bool:
        value = customer.get(self.column)
        if value is None:
            return self.op is Op.NOT_IN
        return (_text(value) in self.values) is (self.op is Op.IN)

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "op": str(self.op), "values": list(self.values)}

    def describe(self) -> str:
        return f"{self.column} {self.op.value.replace('_', ' ')} ({', '.join(self.values)})"


@dataclass(frozen=True)
class Scope:
    conditions: tuple[Condition, ...] = ()

    @property
    def everyone(self) -> bool:
        return not self.conditions

    def admits(self, customer: Mapping[str, Any]) -> bool:
        return all(condition.holds(customer) for condition in self.conditions)

    def refusal(self, customer: Mapping[str, Any]) -> str | None:
        """Why `customer` is out of scope (the first condition it fails), or None."""
        for condition in self.conditions:
            if not condition.holds(customer):
                shown = customer.get(condition.column)
                return (
                    f"out of the sync scope: {condition.column} is "
                    f"{'NULL' if shown is None else repr(_text(shown))}, the scope wants "
                    f"{condition.describe()}; nothing synced"
                )
        return None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.column for c in self.conditions))

    def to_json(self) -> list[dict[str, Any]]:
        return [condition.to_dict() for condition in self.conditions]


EVERYONE = Scope()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scope_from_dicts(items: Any) -> Scope:
    """Parse `[{column, op, values}, …]` (as JSON gives it); InvalidScopeError names what is
    wrong. Values may be strings, numbers or booleans; they are kept as text."""
    if not isinstance(items, list):
        raise InvalidScopeError("conditions", "expected a list of {column, op, values}")
    if len(items) > MAX_CONDITIONS:
        raise InvalidScopeError("conditions", f"at most {MAX_CONDITIONS} conditions")
    conditions = []
    for number, item in enumerate(items):
        where = f"conditions[{number}]"
        if not isinstance(item, dict):
            raise InvalidScopeError(where, "expected an object {column, op, values}")
        unknown = sorted(set(item) - {"column", "op", "values"})
        if unknown:
            raise InvalidScopeError(f"{where}.{unknown[0]}", "unknown key")
        column = item.get("column")
        if not isinstance(column, str) or not column.strip():
            raise InvalidScopeError(f"{where}.column", "a column name is required")
        try:
            op = Op(str(item.get("op")))
        except ValueError:
            raise InvalidScopeError(f"{where}.op", "must be 'in' or 'not_in'") from None
        values = item.get("values")
        if not isinstance(values, list) or not values:
            raise InvalidScopeError(f"{where}.values", "a non-empty list of values is required")
        if len(values) > MAX_VALUES:
            raise InvalidScopeError(f"{where}.values", f"at most {MAX_VALUES} values")
        texts = []
        for value in values:
            if not isinstance(value, (str, int, float, bool)) or (
                isinstance(value, str) and not value
            ):
                raise InvalidScopeError(
                    f"{where}.values", f"{value!r} is not a non-empty string, number or boolean"
                )
            if len(_text(value)) > MAX_VALUE_CHARS:
                raise InvalidScopeError(f"{where}.values", "a value is too long")
            texts.append(_text(value))
        conditions.append(Condition(column.strip(), op, tuple(dict.fromkeys(texts))))
    return Scope(tuple(conditions))


def check_scope_fits_columns(scope: Scope, columns: Mapping[str, str]) -> None:
    """Raise InvalidScopeError naming the first condition on a column the WARP table does
    not have, or whose values do not compare as text (JSON, dates)."""
    for number, condition in enumerate(scope.conditions):
        kind = columns.get(condition.column)
        where = f"conditions[{number}].column"
        if kind is None:
            raise InvalidScopeError(
                where, f"the WARP customers table has no column {condition.column!r}"
            )
        if kind not in COMPARABLE_KINDS:
            raise InvalidScopeError(
                where, f"column {condition.column!r} ({kind}) cannot be compared with a list"
            )


@dataclass(frozen=True)
class ScopeChange:
    """Who enters and who leaves when `before` is replaced by `after`, over some customers."""

    entering: tuple[str, ...]
    leaving: tuple[str, ...]
    admitted_after: int
    total: int


def scope_change(
    before: Scope, after: Scope, customers: Iterable[Mapping[str, Any]]
) -> ScopeChange:
    entering: list[str] = []
    leaving: list[str] = []
    admitted = total = 0
    for customer in customers:
        total += 1
        was, now = before.admits(customer), after.admits(customer)
        admitted += now
        if now and not was:
            entering.append(str(customer["id"]))
        elif was and not now:
            leaving.append(str(customer["id"]))
    return ScopeChange(tuple(entering), tuple(leaving), admitted, total)


def conditions_summary(scope: Scope) -> Sequence[str]:
    return [condition.describe() for condition in scope.conditions]
