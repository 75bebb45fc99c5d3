"""What a hostile request may cost: the webhook route refuses unsigned requests before it
reads a byte of the body; bodies are limited in size while read and in time; only so many
unauthenticated bodies are read at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.types import ASGIApp, Message

from app.api.metrics_exposition import render_metrics
from app.api.middleware import with_lifespan_state
from app.main import create_app
from tests.conftest import Database
from tests.metrics_support import parse_exposition, total
from tests.webhook_support import TOKEN, settings_for, v3_headers

CHUNK = b"x" * 65536


class Feed:
    """An ASGI `receive` that hands out chunks as told, and counts what was taken."""

    def __init__(self, chunks: int | None = None, *, stall_after: int | None = None) -> None:
        self.chunks = chunks  # None: never ending
        self.stall_after = stall_after
        self.taken = 0

    async def __call__(self) -> Message:
        if self.stall_after is not None and self.taken >= self.stall_after:
            await asyncio.sleep(3600)
        self.taken += 1
        more = self.chunks is None or self.taken < self.chunks
        return {"type": "http.request", "body": CHUNK, "more_body": more}


@asynccontextmanager
async def served(db: Database, **extra: str) -> AsyncIterator[ASGIApp]:
    app = create_app(settings_for(db, **extra))
    async with app.router.lifespan_context(app) as state:
        yield with_lifespan_state(app, state or {})


async def call(
    app: ASGIApp, method: str, path: str, headers: dict[str, str], feed: Feed
) -> tuple[int, dict[str, str], Any]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("203.0.113.5", 50000),
        "server": ("hubsync.test", 80),
    }
    await app(scope, feed, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, json.loads(body)


async def test_an_unsigned_or_stale_webhook_is_refused_before_its_body_is_read(
    db: Database,
) -> None:
    stale = v3_headers(b"[]", at_ms=1_000_000_000_000)
    async with served(db) as app:
        for headers in ({"content-type": "application/json"}, stale):
            feed = Feed(stall_after=0)  # a body that would never come
            status, _, body = await call(app, "POST", "/v1/webhooks/hubspot", headers, feed)
            assert status == 401, body
            assert feed.taken == 0


async def test_a_body_over_one_mebibyte_is_refused_while_read(db: Database) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with served(db) as app:
        declared = Feed()
        status, headers, _ = await call(
            app, "PUT", "/v1/sync/config", {**auth, "content-length": str(200 << 20)}, declared
        )
        assert (status, declared.taken) == (413, 0)
        assert headers["connection"] == "close"
        endless = Feed()  # chunked: no Content-Length, 200 MiB on offer
        status, _, _ = await call(app, "PUT", "/v1/sync/config", auth, endless)
        assert status == 413
        assert endless.taken <= (1 << 20) // len(CHUNK) + 1
        unsigned_endless = Feed()
        status, _, _ = await call(
            app, "POST", "/v1/sync/customers/queue", {}, unsigned_endless
        )  # no token: refused before the body
        assert (status, unsigned_endless.taken) == (401, 0)


async def test_a_slow_body_is_cut_off(db: Database) -> None:
    async with served(db, HUBSYNC_BODY_TIMEOUT="0.3s") as app:
        feed = Feed(stall_after=1)
        headers = v3_headers(b"[]")
        started = asyncio.get_running_loop().time()
        status, response_headers, body = await call(
            app, "POST", "/v1/webhooks/hubspot", headers, feed
        )
        elapsed = asyncio.get_running_loop().time() - started
    assert status == 408, body
    assert response_headers["connection"] == "close"
    assert elapsed < 2


async def test_unauthenticated_bodies_in_flight_are_bounded(db: Database) -> None:
    async with served(db, HUBSYNC_MAX_UNAUTHENTICATED="2", HUBSYNC_BODY_TIMEOUT="2s") as app:
        headers = v3_headers(b"[]")
        slow = [
            asyncio.create_task(
                call(app, "POST", "/v1/webhooks/hubspot", headers, Feed(stall_after=1))
            )
            for _ in range(2)
        ]
        await asyncio.sleep(0.2)
        status, response_headers, body = await call(
            app, "POST", "/v1/webhooks/hubspot", headers, Feed(stall_after=1)
        )
        assert status == 503, body
        assert response_headers["retry-after"].isdigit()
        assert [s[0] for s in await asyncio.gather(*slow)] == [408, 408]
        # the slots are free again: an authenticated caller was never counted anyway
        status, _, _ = await call(
            app,
            "POST",
            "/v1/sync/process-queue",
            {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
            Feed(1),
        )
        assert status != 503


def _deliveries(outcome: str) -> float:
    samples = parse_exposition(render_metrics(None).decode())
    return total(samples, "hubsync_webhook_deliveries_total", outcome=outcome)


async def test_deliveries_refused_for_their_size_or_pace_are_counted(db: Database) -> None:
    """The delivery counter sees every answer of the webhook route, also those the limits
    give before the route runs: an operator alerting on `too_large` or `timeout` must not
    see zero while HubSpot's deliveries are being refused."""
    async with served(db, HUBSYNC_BODY_TIMEOUT="0.3s") as app:
        too_large, timeout = _deliveries("too_large"), _deliveries("timeout")
        declared = {**v3_headers(b"[]"), "content-length": str(2 << 20)}
        status, _, _ = await call(app, "POST", "/v1/webhooks/hubspot", declared, Feed())
        assert status == 413
        status, _, _ = await call(app, "POST", "/v1/webhooks/hubspot", v3_headers(b"[]"), Feed())
        assert status == 413  # chunked, refused while read
        stalled = Feed(stall_after=1)
        status, _, _ = await call(app, "POST", "/v1/webhooks/hubspot", v3_headers(b"[]"), stalled)
        assert status == 408
        assert _deliveries("too_large") - too_large == 2
        assert _deliveries("timeout") - timeout == 1
        # Other routes' refusals are not deliveries.
        auth = {"authorization": f"Bearer {TOKEN}", "content-length": str(2 << 20)}
        status, _, _ = await call(app, "PUT", "/v1/sync/config", auth, Feed())
        assert status == 413
        assert _deliveries("too_large") - too_large == 2
