"""JSON error answers: every error a client sees is `{"error": ..., "detail": ..., "request_id"}`;
an unexpected one never shows a traceback or a secret."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.middleware import REQUEST_ID_HEADER, request_id_of
from app.errors import HubsyncError
from app.store.sqlstate import cannot_connect, must_retry_transaction
from app.store.transactions import TransactionConflictError

log = logging.getLogger("hubsync.api")
# Seconds a client is told to wait after a 503: a database restart or failover, typically.
RETRY_AFTER_SECONDS = 5
# What a route raises when its database cannot be reached, whichever layer it comes from.
DATABASE_DOWN = (
    DBAPIError,
    DisconnectionError,
    PoolTimeoutError,
    OSError,
    TransactionConflictError,
)

_TITLES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(HubsyncError):
    """An error answer decided by a handler: status, a short code and what is wrong."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _TITLES.get(status, "error")
        self.extra = extra or {}


def error_response(
    request: Request, status: int, code: str, detail: str, extra: dict[str, Any] | None = None
) -> JSONResponse:
    request_id = request_id_of(request.scope)
    body: dict[str, Any] = {"error": code, "detail": detail, "request_id": request_id}
    body.update(extra or {})
    headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if status in (408, 413, 500):
        # The request may be half read (or the process in a bad way): end this connection
        # rather than parse whatever follows on it as a new request.
        headers["Connection"] = "close"
    return JSONResponse(body, status_code=status, headers=headers)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)  # noqa: S101 -- registered for ApiError only
    return error_response(request, exc.status, exc.code, exc.detail, exc.extra)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 -- registered for HTTPException only
    detail = exc.detail if exc.status_code != 404 else f"no route for {request.url.path}"
    response = error_response(
        request, exc.status_code, _TITLES.get(exc.status_code, "error"), detail
    )
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def is_database_down(exc: BaseException) -> bool:
    """The database could not serve the request, not a bug: unreachable, starting up or
    shutting down (`57P0x`, `08xxx`: asyncpg reports these as generic `DBAPIError`s), or it
    aborted the transaction to break a deadlock on every try."""
    if isinstance(exc, TransactionConflictError):
        return True
    if isinstance(exc, DBAPIError):
        return (
            exc.connection_invalidated
            or isinstance(exc, OperationalError | InterfaceError)
            or cannot_connect(exc)
            or must_retry_transaction(exc)
        )
    return isinstance(exc, DATABASE_DOWN)


async def handle_database_down(request: Request, exc: Exception) -> Response:
    """503 with Retry-After when the database cannot be reached; any other database error
    (a bug) stays a 500."""
    if not is_database_down(exc):
        return await handle_unexpected(request, exc)
    log.warning(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        extra={"request_id": request_id_of(request.scope)},
    )
    return error_response(
        request, 503, "unavailable", "the database is unavailable; nothing was done, retry later"
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.error(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        exc_info=exc,
        extra={"request_id": request_id_of(request.scope)},
    )
    return error_response(
        request, 500, "internal_error", "an unexpected error occurred; quote the request id"
    )
