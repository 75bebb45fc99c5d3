"""JSON from outside: the nesting limit holds exactly, whichever way the document nests, and
the cheap bracket count that skips the walk never lets a deep document through."""

from __future__ import annotations

import json

import pytest

from app.sync.core.json_input import MAX_DEPTH, JsonInputError, json_depth, parse_json


def nested(depth: int) -> object:
    document: object = "leaf [with {brackets} in a string]"
    for level in range(depth):
        document = [document] if level % 2 else {"k": document}
    return document


@pytest.mark.parametrize("as_text", [False, True])
def test_the_limit_is_exact(as_text: bool) -> None:
    for depth in (MAX_DEPTH - 1, MAX_DEPTH):
        body = json.dumps(nested(depth))
        assert json_depth(parse_json(body if as_text else body.encode())) == depth
    too_deep = json.dumps(nested(MAX_DEPTH + 1))
    with pytest.raises(JsonInputError, match="nested deeper"):
        parse_json(too_deep if as_text else too_deep.encode())


def test_brackets_in_strings_do_not_hide_depth_or_refuse_a_flat_document() -> None:
    flat = json.dumps([{"name": "[" * 100 + "{" * 100}])
    assert parse_json(flat.encode()) == json.loads(flat)
    deep_with_noise = json.dumps(nested(MAX_DEPTH + 1)) + " " * 10
    with pytest.raises(JsonInputError):
        parse_json(deep_with_noise.encode())
