"""A database outage is a 503 with Retry-After on every route, never a 500."""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import yaml

from app.main import create_app
from app.settings import Settings
from app.sync.core.rules import DEFAULT_RULES, rule_to_dict
from tests.support import running
from tests.unit.test_openapi import DOCUMENT
from tests.webhook_support import BASE, change, encode, v3_headers

TOKEN = "ops-token-for-tests"
CUSTOMER = str(uuid.uuid4())
VALID_BODIES = {
    ("POST", "/v1/sync/customers/{customer_id}/queue"): {"priority": 5},
    ("POST", "/v1/sync/customers/queue"): {"customer_ids": [CUSTOMER]},
    ("POST", "/v1/sync/process-queue"): {},
    ("POST", "/v1/webhooks/events/reprocess"): {"status": "failed"},
    ("POST", "/v1/sync/customers/{customer_id}/relink"): {"action": "split"},
    ("POST", "/v1/sync/conflicts/{conflict_id}/resolve"): {"choice": "WARP"},
    ("POST", "/v1/sync/failed/retry"): {"job_ids": [1]},
    ("POST", "/v1/reconciliation/runs"): {"mode": "dry_run"},
    ("PUT", "/v1/sync/config"): {"rules": [rule_to_dict(rule) for rule in DEFAULT_RULES]},
    ("PUT", "/v1/sync/scope"): {
        "conditions": [{"column": "status", "op": "not_in", "values": ["CLOSED"]}]
    },
}


def operations() -> list[tuple[str, str]]:
    document = yaml.safe_load(DOCUMENT.read_text())
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


async def test_every_route_answers_503_with_retry_after_when_the_database_is_down() -> None:
    await assert_every_route_503("postgresql://nobody:pw@127.0.0.1:1/none")


@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [
        ("57P03", "the database system is starting up"),
        ("57P01", "terminating connection due to administrator command"),
        ("08006", "connection failure"),
    ],
)
async def test_every_route_answers_503_while_the_database_cannot_accept_connections(
    sqlstate: str, message: str
) -> None:
    """PostgreSQL starting up (or shutting down) accepts the TCP connection and then refuses
    the session with an error; asyncpg reports it as a plain `PostgresError`, which SQLAlchemy
    wraps in a generic `DBAPIError`. That is an outage (503), not a bug (500)."""
    async with refusing_postgres(sqlstate, message) as port:
        await assert_every_route_503(f"postgresql://hubsync:pw@127.0.0.1:{port}/hubsync")


@asynccontextmanager
async def refusing_postgres(sqlstate: str, message: str) -> AsyncIterator[int]:
    """A TCP server speaking just enough of PostgreSQL's protocol to refuse every session the
    way a server that is starting up does: decline SSL/GSS encryption, read the startup
    message, answer a FATAL ErrorResponse with `sqlstate`, hang up."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length, code = struct.unpack("!ii", await reader.readexactly(8))
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    writer.write(b"N")
                    await writer.drain()
                    continue
                await reader.readexactly(length - 8)
                break
            fields = b"".join(
                kind + value.encode() + b"\0"
                for kind, value in (
                    (b"S", "FATAL"),
                    (b"V", "FATAL"),
                    (b"C", sqlstate),
                    (b"M", message),
                )
            )
            body = fields + b"\0"
            writer.write(b"E" + struct.pack("!i", len(body) + 4) + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


async def assert_every_route_503(database_url: str) -> None:
    settings = Settings.from_mapping(
        {
            "HUBSYNC_MODE": "demo",
            "HUBSYNC_DATABASE_URL": database_url,
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_SCHEDULER": "false",
            "HUBSYNC_API_TOKENS": TOKEN,
            "HUBSPOT_CLIENT_SECRET": "test-client-secret-not-real",
        }
    )
    answers = {}
    async with running(create_app(settings), base_url=BASE) as client:
        for method, template in operations():
            path = (
                template.replace("{customer_id}", CUSTOMER)
                .replace("{job_id}", "1")
                .replace("{direction}", "outbound")
                .replace("{conflict_id}", "1")
                .replace("{run_id}", "1")
            )
            if path.startswith("/v1/webhooks/hubspot"):
                body = encode([change(501)])
                response = await client.post(
                    path, content=body, headers=v3_headers(body, BASE + path)
                )
            else:
                response = await client.request(
                    method,
                    path,
                    json=VALID_BODIES.get((method, template)) if method != "GET" else None,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
            answers[method, template] = response
    assert answers.pop(("GET", "/healthz")).status_code == 200
    assert answers.pop(("GET", "/metrics")).status_code == 200  # says hubsync_database_up 0
    assert answers.pop(("GET", "/")).status_code in (307, 404)  # a pointer, no database
    assert ("PUT", "/v1/sync/config") in answers
    ready = answers.pop(("GET", "/readyz"))
    assert ready.status_code == 503
    assert ready.headers["retry-after"].isdigit()
    for operation, response in answers.items():
        assert response.status_code == 503, (operation, response.text)
        assert response.headers["retry-after"].isdigit(), operation
        assert response.json()["error"] == "unavailable", operation
