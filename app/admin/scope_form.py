"""The console's Scope form: one row per condition (column, op, comma-separated values), plus
an empty row to add one; a row with no column is dropped. The conditions then go through the
same parser and column check as `PUT /v1/sync/scope`."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData

OPS = ("not_in", "in")
MAX_ROWS = 20


def scope_rows(conditions: list[dict[str, Any]]) -> list[dict[str, str]]:
    rows = [
        {"column": c["column"], "op": c["op"], "values": ", ".join(c["values"])} for c in conditions
    ]
    return [*rows, {"column": "", "op": "not_in", "values": ""}]


def scope_rows_from_form(form: FormData) -> list[dict[str, str]]:
    rows = []
    for i in range(MAX_ROWS + 1):
        if f"scope-{i}-column" not in form:
            break
        rows.append(
            {
                name: str(form.get(f"scope-{i}-{name}", "")).strip()[:2000]
                for name in ("column", "op", "values")
            }
        )
    return rows


def conditions_from_rows(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "column": row["column"],
            "op": row["op"],
            "values": [v.strip() for v in row["values"].split(",") if v.strip()],
        }
        for row in rows
        if row["column"]
    ]
