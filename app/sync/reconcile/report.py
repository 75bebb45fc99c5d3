"""A run's report as CSV and JSON text, a chunk of items at a time (never the whole run in
memory): shared by the API's downloads and `hubsync reconcile --report`."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from app.store.reconciliation import RunRecord

CSV_COLUMNS = (
    "run_id",
    "category",
    "warp_customer_id",
    "hubspot_company_id",
    "warp_ban",
    "field",
    "warp_value",
    "hubspot_value",
    "decision",
    "action",
    "job_id",
    "detail",
)


# OWASP's CSV injection rule: a spreadsheet reads a cell starting with one of these as a
# formula (or, after a tab or CR, may strip it and read what follows as one).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number (sign, digits, point, exponent): a spreadsheet reads it as a number,
# never as a formula, so "-12.5" is kept as it is and still sums.
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(value: object) -> object:
    """The cell as a spreadsheet should see it: text that would start a formula gets a
    leading single quote, which spreadsheets show as text and do not evaluate. CRM values
    are typed by anyone with HubSpot access, and the report is opened by an operator."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    return value if NUMBER.fullmatch(value) else "'" + value


def csv_rows(run_id: int, items: Iterable[dict[str, Any]]) -> Iterable[list[Any]]:
    """One row per drifting field (so a spreadsheet filters by field), one per other item;
    every cell spreadsheet-safe."""
    for row in _raw_rows(run_id, items):
        yield [spreadsheet_safe(cell) for cell in row]


def _raw_rows(run_id: int, items: Iterable[dict[str, Any]]) -> Iterable[list[Any]]:
    for item in items:
        base = [
            run_id,
            item["category"],
            item["warp_customer_id"] or "",
            item["hubspot_company_id"] or "",
            item["warp_ban"] or "",
        ]
        tail = [item["action"] or "", item["job_id"] or "", item["detail"] or ""]
        fields = item["fields"] or [{}]
        for entry in fields:
            yield [
                *base,
                entry.get("field", ""),
                _cell(entry.get("warp")),
                _cell(entry.get("hubspot")),
                entry.get("decision", ""),
                *tail,
            ]


def _cell(value: object) -> str:
    return "" if value is None else str(value)


async def csv_text(run_id: int, chunks: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    async for chunk in chunks:
        writer.writerows(csv_rows(run_id, chunk))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


async def json_text(
    run: RunRecord, chunks: AsyncIterator[list[dict[str, Any]]]
) -> AsyncIterator[str]:
    """`{"run": {...}, "items": [...]}`, written as the items arrive."""
    yield '{"run": ' + json.dumps(run.to_json()) + ', "items": ['
    first = True
    async for chunk in chunks:
        text = ", ".join(json.dumps(item) for item in chunk)
        yield text if first else ", " + text
        first = False
    yield "]}\n"
