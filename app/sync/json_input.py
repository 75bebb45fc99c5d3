"""JSON from outside, read so that no input costs a 500: nesting, numbers of thousands of
digits and NaN/Infinity (which no database JSON column stores) are refused as bad input."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class JsonInputError(ValueError):
    """The bytes are not JSON hubsync accepts; the message says why, in one line."""


def _refuse_constant(name: str) -> Any:
    raise JsonInputError(f"the body holds {name}, which JSON does not allow")


def parse_json(body: bytes | str) -> Any:
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except JsonInputError:
        raise
    except RecursionError:
        raise JsonInputError(f"the JSON is nested deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JsonInputError(f"the body is not valid JSON: {exc}") from None
    except ValueError:  # an integer past Python's 4,300-digit conversion limit
        raise JsonInputError("the body holds a number too long to read") from None
    if json_depth(document) > MAX_DEPTH:
        raise JsonInputError(f"the JSON is nested deeper than {MAX_DEPTH} levels")
    return document


def json_depth(document: Any) -> int:
    """How deeply arrays and objects nest (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
