"""The per-request shortcuts of the webhook route read the raw scope; each must give what the
long way through Starlette's objects gives (bench/README.md, intake against the bare floor)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message

from app.api.middleware import RequestIdMiddleware, request_id_of
from app.api.webhook_signatures import signed_uri
from app.api.webhooks import summary_response
from app.sync.intake.routing import DeliverySummary

HOSTS = [
    "example.com",
    "Example.COM:8443",
    "127.0.0.1:80",
    "hooks.example.com:443",
    "host:0080",
    "host:99999",  # not a port: Starlette falls back to the server's address
    "[::1]:8000",
    "[::1]",
    "user@host",
    "host/extra",
    "host?x",
    "",
    "a b",
    None,  # no Host header at all
]


def scope_for(host: str | None, scheme: str = "https", server: Any = ("10.0.0.5", 8080)) -> Any:
    headers = [] if host is None else [(b"host", host.encode("latin-1"))]
    return {
        "type": "http",
        "method": "POST",
        "scheme": scheme,
        "server": server,
        "path": "/v1/webhooks/hubspot",
        "raw_path": b"/v1/webhooks/hubspot",
        "query_string": b"portal=1",
        "headers": [(b"content-type", b"application/json"), *headers],
    }


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("server", [("10.0.0.5", 8080), ("10.0.0.5", 443), None])
def test_the_signed_uri_has_the_origin_request_url_gives(
    host: str | None, scheme: str, server: Any
) -> None:
    request = Request(scope_for(host, scheme, server))
    origin = f"{request.url.scheme}://{request.url.netloc}"
    assert signed_uri(request, None) == origin + "/v1/webhooks/hubspot?portal=1"


async def run_middleware(headers: list[tuple[bytes, bytes]], answer: list[Any]) -> Any:
    sent: list[Message] = []
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["id"] = request_id_of(scope)
        await send({"type": "http.response.start", "status": 200, "headers": answer})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": headers}
    await RequestIdMiddleware(app)(scope, receive, send)
    return seen["id"], sent[0]["headers"]


async def test_a_sane_incoming_request_id_is_kept_the_last_one_sent() -> None:
    headers = [(b"x-request-id", b"first"), (b"x-request-id", b"abc-123")]
    request_id, answered = await run_middleware(headers, [(b"content-type", b"x")])
    assert request_id == "abc-123"
    assert answered == [(b"content-type", b"x"), (b"x-request-id", b"abc-123")]


@pytest.mark.parametrize("incoming", [None, b"bad id with spaces", b"", b"x" * 129])
async def test_otherwise_a_new_id_of_32_hex_digits(incoming: bytes | None) -> None:
    headers = [] if incoming is None else [(b"x-request-id", incoming)]
    request_id, answered = await run_middleware(headers, [])
    assert len(request_id) == 32
    int(request_id, 16)
    assert answered == [(b"x-request-id", request_id.encode())]


async def test_an_answer_that_already_has_a_request_id_keeps_its_own() -> None:
    own = [(b"x-request-id", b"the-app-s")]
    _, answered = await run_middleware([], own)
    assert answered == own


@pytest.mark.parametrize(
    "summary",
    [
        DeliverySummary(),
        DeliverySummary(received=100, stored=97, duplicates=3, queued=90, ignored=5, failed=2),
        DeliverySummary(received=2**40, processed=7, job_ids=[1, 2]),
    ],
)
def test_a_delivery_s_answer_is_what_json_response_writes(summary: DeliverySummary) -> None:
    quick = summary_response(summary)
    slow = JSONResponse(summary.to_json())
    assert (quick.body, quick.status_code) == (slow.body, slow.status_code)
    assert quick.headers["content-type"] == slow.headers["content-type"]
    assert quick.headers["content-length"] == slow.headers["content-length"]
