"""`GET /metrics`: Prometheus' text format, read at scrape time (app/metrics/), on the
service's port or on a port of its own (HUBSYNC_METRICS_PORT), and the webhook route's
delivery counter."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from app.api.deps import app_context
from app.api.errors import ApiError
from app.api.metrics_exposition import rate_limits_of, render_metrics
from app.api.middleware import with_lifespan_state
from app.metrics.instruments import observe_webhook_delivery
from app.store.operations import OperationsSnapshot, read_snapshot

log = logging.getLogger("hubsync.metrics")
SNAPSHOT_TIMEOUT_SECONDS = 5.0

Endpoint = Callable[[Request], Awaitable[Response]]


async def metrics(request: Request) -> Response:
    context = app_context(request)
    snapshot: OperationsSnapshot | None = None
    try:
        async with asyncio.timeout(SNAPSHOT_TIMEOUT_SECONDS):
            async with context.engine.connect() as connection:
                snapshot = await read_snapshot(connection, rate_limits_of(context.settings))
    except Exception as exc:  # noqa: BLE001 -- the counters are still worth serving
        log.warning("metrics: database snapshot failed: %s", type(exc).__name__)
    body = await asyncio.to_thread(render_metrics, snapshot)  # reads files in multiprocess mode
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def counted_delivery(endpoint: Endpoint) -> Endpoint:
    """Count each webhook delivery by the status it was answered with."""

    @functools.wraps(endpoint)
    async def counted(request: Request) -> Response:
        try:
            response = await endpoint(request)
        except ApiError as exc:
            observe_webhook_delivery(exc.status)
            raise
        except Exception:
            observe_webhook_delivery(500)
            raise
        observe_webhook_delivery(response.status_code)
        return response

    return counted


def refused_delivery_counter(paths: Collection[str]) -> Callable[[Scope, int], None]:
    """For RequestLimits: count a delivery to one of `paths` it refused before the route ran
    (a Content-Length over the limit), as `counted_delivery` counts the rest."""

    def count(scope: Scope, status: int) -> None:
        if scope.get("path") in paths:
            observe_webhook_delivery(status)

    return count


routes = [Route("/metrics", metrics, methods=["GET"])]


@contextlib.asynccontextmanager
async def metrics_server(port: int, state: dict[str, Any]) -> AsyncIterator[None]:
    """`/metrics` alone on `port` (all interfaces) while the service runs. The socket is
    bound with SO_REUSEPORT, so each process of `hubsync serve --workers N` serves it and
    whichever answers sums them all."""
    app = with_lifespan_state(Starlette(routes=routes), state)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("0.0.0.0", port))  # noqa: S104 -- Prometheus scrapes the pod from outside
    task = asyncio.create_task(server.serve(sockets=[sock]), name="hubsync-metrics")
    log.info("metrics on port %d", port)
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()
