"""The JSON text a batch's JSON columns are written with (`app.store.upsert._json`): orjson's,
and the standard library's for what orjson refuses, so no value that was stored before fails."""

from __future__ import annotations

import json

from app.store.upsert import _json


def test_values_read_back_as_they_were_given() -> None:
    value = {"changes": [{"field": "company_name", "old": "Acme", "new": "Äcme ✓", "n": None}]}
    assert json.loads(_json(value) or "") == value
    assert _json(None) is None


def test_an_integer_past_64_bits_is_written_as_the_standard_library_writes_it() -> None:
    value = {"big": 2**70}
    assert _json(value) == json.dumps(value)
