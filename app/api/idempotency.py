"""`Idempotency-Key` on POSTs (IETF httpapi draft): a retried request gets the first answer.

Same key and same request → the stored status and body (header `Idempotent-Replayed: true`);
same key, different request → 422; the same key while the first request is still running →
409. Keys are scoped per API token and route. A request that ends in an error answer stores
nothing (nothing happened, so running it again is safe and gives the same error).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.api.errors import ApiError
from app.store.idempotency import (
    IdempotencyInFlightError,
    IdempotencyMismatchError,
    IdempotencyRepository,
)
from app.sync.core.json_input import JsonInputError, parse_json

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


@dataclass
class Answer:
    """Lets the route store its answer inside the transaction of its effect."""

    repository: IdempotencyRepository | None
    key: str | None
    endpoint: str
    recorded: bool = False

    async def record(self, connection: AsyncConnection, status: int, body: dict[str, Any]) -> None:
        if self.repository is not None and self.key is not None:
            await self.repository.record(connection, self.key, self.endpoint, status, body)
            self.recorded = True


Produce = Callable[[Answer], Awaitable[tuple[int, dict[str, Any]]]]


async def answer_idempotently(
    request: Request,
    repository: IdempotencyRepository,
    *,
    caller: str,
    route: str,
    body: bytes,
    produce: Produce,
) -> JSONResponse:
    key = request.headers.get(HEADER)
    endpoint = f"{caller} {request.method} {route}"[:255]
    if key is None:
        status, payload = await produce(Answer(None, None, endpoint))
        return JSONResponse(payload, status_code=status)
    key = key.strip()
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(
            400, f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters", code="bad_request"
        )
    fingerprint = request_fingerprint(request.method, request.url.path, body)
    try:
        stored = await repository.reserve(key, endpoint, fingerprint)
    except IdempotencyMismatchError:
        raise ApiError(
            422,
            f"this {HEADER} was already used for a different request; use a new key",
            code="idempotency_key_reused",
        ) from None
    except IdempotencyInFlightError:
        raise ApiError(
            409,
            f"a request with this {HEADER} is still being processed; retry shortly",
            code="idempotency_key_in_flight",
        ) from None
    if stored is not None:
        return JSONResponse(
            stored.body, status_code=stored.status_code, headers={"Idempotent-Replayed": "true"}
        )
    answer = Answer(repository, key, endpoint)
    try:
        status, payload = await produce(answer)
    except BaseException:
        await repository.forget(key, endpoint)
        raise
    if not answer.recorded:
        await repository.record_now(key, endpoint, status, payload)
    return JSONResponse(payload, status_code=status)


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """The request's identity: method, path and body (JSON compared by meaning, not bytes)."""
    try:
        canonical = json.dumps(parse_json(body), sort_keys=True, separators=(",", ":")).encode()
    except JsonInputError:  # the route refuses it; the bytes identify it meanwhile
        canonical = body
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()
