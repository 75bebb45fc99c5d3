"""A run's report as CSV and JSON text, a chunk of items at a time (never the whole run in
memory): shared by the API's downloads and `hubsync reconcile --report`."""

from __future__ import annotations

import csv
import io
import json
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


def csv_rows(run_id: int, items: Iterable[dict[str, Any]]) -> Iterable[list[Any]]:
    """One row per drifting field (so a spreadsheet filters by field), one per other item."""
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
