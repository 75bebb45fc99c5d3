"""The JSON a batch's rows are written to PostgreSQL with (`app.store.upsert._rows_json`):
orjson's, and the standard library's for what orjson refuses, so no row that was stored before
fails; a naive time is UTC, as asyncpg takes one."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from app.store.db import json_loads
from app.store.upsert import _rows_json


def test_rows_read_back_as_they_were_given() -> None:
    rows = [{"changes": [{"field": "company_name", "old": "Acme", "new": "Äcme ✓"}], "n": None}]
    assert json.loads(_rows_json(rows)) == rows


def test_times_are_written_with_their_offset_and_a_naive_one_as_utc() -> None:
    aware = datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC)
    [row] = json.loads(_rows_json([{"a": aware, "b": aware.replace(tzinfo=None)}]))
    assert datetime.fromisoformat(row["a"]) == aware
    assert datetime.fromisoformat(row["b"]) == aware


def test_an_integer_past_64_bits_is_written_as_the_standard_library_writes_it() -> None:
    aware = datetime(2026, 12, 7, tzinfo=UTC)
    [row] = json.loads(_rows_json([{"big": 2**70, "at": aware.replace(tzinfo=None)}]))
    assert row["big"] == 2**70
    assert datetime.fromisoformat(row["at"]) == aware


def test_json_read_from_postgresql_keeps_every_digit() -> None:
    assert json_loads('{"a": [1, "b", null]}') == {"a": [1, "b", None]}
    big = '{"big": 123456789012345678901234567890, "edge": 18446744073709551615}'
    assert json_loads(big) == {"big": 123456789012345678901234567890, "edge": 2**64 - 1}
    assert json_loads('{"n": -9223372036854775808}') == {"n": -(2**63)}
