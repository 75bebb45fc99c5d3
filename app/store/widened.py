"""Values that outgrew `varchar(64)`: a link's ban, and a reconciliation item's ban and ids,
are as long as WARP's `text` column or a CRM user makes them (app/sync/core/identity.py).

Expand, then contract (migration 0012). The `varchar(64)` columns stay as they are: the
previous release (0.1.0) still reads them during a rolling upgrade, through prepared
statements that PostgreSQL refuses once a column's type changed. Beside each one is a `text`
column named `<column>_text`. This code writes a value into its text column, and into the old
column too when it fits (NULL there when it does not: the old release sees no ban rather than
a cut one). It reads the old column when it is set, else the text one: the old release writes
only the old column, so a value it wrote since wins over what the text column still holds.
(One case it cannot tell: the old release clearing the ban of a link this code gave a long
one. The link keeps the long ban until its next sync writes it again.) No backfill is needed
meanwhile. A later release, once the old one is gone, copies the old columns into the text
ones where set and drops the old ones (CHANGELOG.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, false, func, or_

OLD_LENGTH = 64  # the old columns' varchar(64)
SUFFIX = "_text"


def fits(value: str | None) -> bool:
    return value is None or len(value) <= OLD_LENGTH


def written(values: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A row's values as stored: each of `names` present in `values` is also set in its text
    column, and left out of the old one (NULL) when it does not fit there."""
    row = dict(values)
    for name in names:
        if name in row:
            value = row[name]
            row[name + SUFFIX] = value
            if not fits(value):
                row[name] = None
    return row


def read(row: Mapping[Any, Any], name: str) -> str | None:
    """The value of `name` in a row read with both columns (`select(table)`)."""
    old: str | None = row[name]
    return old if old is not None else row[name + SUFFIX]


def column(table: Table, name: str) -> ColumnElement[Any]:
    """The value of `name` as a select's column (labelled `name`)."""
    return func.coalesce(table.c[name], table.c[name + SUFFIX]).label(name)


def among(table: Table, name: str, values: Sequence[str]) -> ColumnElement[bool]:
    """Rows whose `name` (as `read` tells it) is one of `values`: a value that fits is in the
    old column, whoever wrote it; a longer one only in the text column, with the old one NULL.
    Each side can use its column's index."""
    short = [value for value in values if fits(value)]
    long = [value for value in values if not fits(value)]
    return or_(
        table.c[name].in_(short) if short else false(),
        (table.c[name + SUFFIX].in_(long) & table.c[name].is_(None)) if long else false(),
    )
