"""JSON from outside, read so that no input costs a 500: nesting, numbers of thousands of
digits and NaN/Infinity (which no database JSON column stores) are refused as bad input."""

from __future__ import annotations

import json
from typing import Any

from app.errors import HubsyncError

MAX_DEPTH = 32


class JsonInputError(HubsyncError, ValueError):
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
    if _may_nest_deeper(body) and json_depth(document) > MAX_DEPTH:
        raise JsonInputError(f"the JSON is nested deeper than {MAX_DEPTH} levels")
    return document


def _may_nest_deeper(body: bytes | str) -> bool:
    """Whether the document can nest past MAX_DEPTH at all: it cannot open more arrays and
    objects than it has brackets (those inside strings only make the count larger), and
    counting them is much cheaper than walking the parsed document."""
    if isinstance(body, bytes):
        return body.count(b"[") + body.count(b"{") > MAX_DEPTH
    return body.count("[") + body.count("{") > MAX_DEPTH


def json_depth(document: Any) -> int:
    """How deeply arrays and objects nest (a scalar is 0), without recursion; only
    containers are visited, so a delivery of flat events costs one pass over its values."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)] if isinstance(document, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                return deepest
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return deepest
