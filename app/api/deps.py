"""What handlers need from the request: the app context, the caller's identity, the body."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request

from app.api.errors import ApiError
from app.api.limits import mark_authenticated
from app.context import AppContext
from app.sync.core.json_input import JsonInputError, parse_json


def app_context(request: Request) -> AppContext:
    context: AppContext = request.state.hubsync
    return context


def require_api_token(request: Request) -> str:
    """Check the bearer token against HUBSYNC_API_TOKENS in constant time; return a caller
    label for audit trails (never the token itself)."""
    tokens = app_context(request).settings.api_tokens
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(401, "a bearer token is required (Authorization: Bearer <token>)")
    presented_bytes = presented.strip().encode()
    matched = None
    for index, token in enumerate(tokens):
        if hmac.compare_digest(presented_bytes, token.reveal().encode()):
            matched = index
    if matched is None:
        raise ApiError(401, "the bearer token is not valid")
    mark_authenticated(request.scope)
    return f"api-token-{matched + 1}"


async def json_body(request: Request, *, required: bool = False) -> Any:
    """The parsed JSON body; 400 when it is not JSON. RequestLimits (app/api/limits.py) has
    already bounded its size (413) and time (408)."""
    body = await request.body()
    if not body.strip():
        if required:
            raise ApiError(400, "a JSON body is required")
        return None
    try:
        document = parse_json(body)
    except JsonInputError as exc:
        raise ApiError(400, str(exc)) from None
    if document is None:  # JSON null is a body, and no route takes it
        raise ApiError(400, "the body is JSON null; send an object, or no body")
    if (where := unstorable_text(document)) is not None:
        raise ApiError(
            422,
            f"{where or 'body'}: text with a NUL character or half a surrogate pair cannot be "
            "stored",
            extra={"field": where or "body"},
        )
    return document


def unstorable_text(document: Any, path: str = "") -> str | None:
    """Where the first string PostgreSQL cannot store is (a key or a value holding NUL, or a
    lone surrogate that has no UTF-8 form), as `a.b[2].c`; None when there is none. Checked
    here, once for every route, rather than met as a database error (a 500)."""
    if isinstance(document, str):
        return path if not _storable(document) else None
    if isinstance(document, dict):
        for key, value in document.items():
            here = f"{path}.{key}" if path else str(key)
            if not _storable(key):
                return here
            if (found := unstorable_text(value, here)) is not None:
                return found
    elif isinstance(document, list):
        for index, value in enumerate(document):
            if (found := unstorable_text(value, f"{path}[{index}]")) is not None:
                return found
    return None


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
