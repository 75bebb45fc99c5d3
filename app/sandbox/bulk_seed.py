"""A million companies from a compact spec, made in the sandbox: a benchmark's set-up in
seconds, where a million companies through the control route's JSON took many minutes.

The spec (`POST /_sandbox/seed`)::

    {"count": 1000000,
     "properties": {"name": "Bench Customer {n}", "warp_ban": "ZT-{n+700000000}",
                    "warp_status": "ACTIVE"},
     "overrides": {"17": {"warp_status": "SUSPENDED"}},
     "userId": 1}

Company `n` (0 to count - 1) gets each property's template with `{n}` replaced by `n`, or
`{n+K}` / `{n-K}` by `n + K` / `n - K`; `overrides` change some companies' values after
that ("" clears one). The companies get consecutive ids in the order of `n` and no webhooks,
as `/_sandbox/companies` would with the limits off; the answer names the first id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from app.sandbox.clock import now_ms
from app.sandbox.errors import bad_request
from app.sandbox.properties import PropertyRegistry
from app.sandbox.store import SeedColumns, WriteSource
from app.sandbox.values import InvalidValueError, normalize_value

MAX_COUNT = 2_000_000
_PLACEHOLDER = re.compile(r"\{n(?:([+-])(\d{1,12}))?\}")

Template = Callable[[int], str]


def parse_template(text: str) -> Template | str:
    """A function of `n` for a text with placeholders, or the text itself without any."""
    parts = _PLACEHOLDER.split(text)
    if len(parts) == 1:
        return text
    literals = parts[0::3]
    offsets = [
        0 if sign is None else (int(amount) if sign == "+" else -int(amount))
        for sign, amount in zip(parts[1::3], parts[2::3], strict=True)
    ]
    if len(offsets) == 1:
        before, after = literals
        offset = offsets[0]
        return lambda n: f"{before}{n + offset}{after}"

    def render(n: int) -> str:
        pieces = [literals[0]]
        for offset, literal in zip(offsets, literals[1:], strict=True):
            pieces += [str(n + offset), literal]
        return "".join(pieces)

    return render


def seed_rows(
    registry: PropertyRegistry, body: object, source: WriteSource
) -> tuple[SeedColumns, list[tuple[str, ...]]]:
    """The columns and rows a spec describes, every value normalised as a create would;
    HubSpot's VALIDATION_ERROR for a bad value, a 400 for a malformed spec."""
    if not isinstance(body, dict):
        raise bad_request("The seed spec must be an object")
    count = body.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_COUNT:
        raise bad_request(f"count must be an integer from 0 to {MAX_COUNT}")
    templates = body.get("properties", {})
    if not isinstance(templates, dict) or not all(
        isinstance(value, str) for value in templates.values()
    ):
        raise bad_request("properties must be an object of property names to text templates")
    overrides = _overrides(body.get("overrides", {}), count)
    names = tuple(sorted({*templates, *(name for values in overrides.values() for name in values)}))
    registry.normalize(dict.fromkeys(names, ""))  # every name a writable property
    normalizers = [_normalizer(registry, name) for name in names]
    makers = [parse_template(templates.get(name, "")) for name in names]
    constant = [None if callable(maker) else normalize(maker)
                for maker, normalize in zip(makers, normalizers, strict=True)]  # fmt: skip
    rows: list[tuple[str, ...]] = []
    for n in range(count):
        row = tuple(
            fixed if fixed is not None else normalize(maker(n))  # type: ignore[operator]
            for fixed, maker, normalize in zip(constant, makers, normalizers, strict=True)
        )
        rows.append(row)
    for n, values in overrides.items():
        normalized = registry.normalize(values)
        rows[n] = tuple(normalized.get(name, old) for name, old in zip(names, rows[n], strict=True))
    return SeedColumns(names, now_ms(), source), rows


def _overrides(raw: object, count: int) -> dict[int, Mapping[str, object]]:
    if not isinstance(raw, dict):
        raise bad_request("overrides must be an object of company numbers to properties")
    chosen: dict[int, Mapping[str, object]] = {}
    for key, values in raw.items():
        if not str(key).isdigit() or int(key) >= count or not isinstance(values, dict):
            raise bad_request(
                f"overrides: {key!r} must be a company number below count, with an object of "
                "properties"
            )
        chosen[int(key)] = values
    return chosen


def _normalizer(registry: PropertyRegistry, name: str) -> Callable[[str], str]:
    """The create's normalisation of one property's value, without the per-company dict."""
    prop = registry.get(name)
    assert prop is not None  # noqa: S101 - `seed_rows` checked every name

    def normalize(value: str) -> str:
        try:
            return normalize_value(prop, value)
        except InvalidValueError:
            registry.normalize({name: value})  # raises HubSpot's VALIDATION_ERROR
            raise

    return normalize
