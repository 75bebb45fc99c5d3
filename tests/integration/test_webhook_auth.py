"""Webhook intake refuses before it stores: signatures (v3, and v1/v2 when configured), body
size, shape, a missing secret, a database that went away.

Signatures are computed independently of app/hubspot/signatures.py (plain hmac/hashlib), so a
bug there cannot hide behind the same bug in the test.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url

from app.main import create_app
from app.settings import Settings
from tests.conftest import Database
from tests.support import running
from tests.webhook_support import (
    BASE,
    PATH,
    SECRET,
    T0,
    change,
    deliver,
    encode,
    jobs,
    service,
    stored,
    v3,
    v3_headers,
)

# -- signatures ------------------------------------------------------------------------------


async def test_a_v3_signed_delivery_is_stored_and_queued(db: Database) -> None:
    async with service(db) as client:
        response = await deliver(client, [change(501)])
    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": 1,
        "stored": 1,
        "duplicates": 0,
        "queued": 1,
        "ignored": 0,
        "processed": 0,
        "failed": 0,
    }
    [event] = await stored(db)
    [job] = await jobs(db)
    assert (event.status, event.job_id, event.object_id) == ("queued", job.id, "501")
    assert event.raw["portalId"] == 62515
    assert (job.entity_type, job.entity_key, job.direction, job.source) == (
        "company",
        "501",
        "to_warp",
        "webhook",
    )


async def test_v3_through_the_public_url_with_a_query_and_encoded_characters(
    db: Database,
) -> None:
    public = "https://hooks.example.com"
    query = "?portal=62515&note=a%3Ab%20c%2Fd"
    body = encode([change(501)])
    # HubSpot decodes %3A and %2F (not %20) before signing.
    signed_uri = public + PATH + "/company?portal=62515&note=a:b%20c/d"
    async with service(db, HUBSYNC_PUBLIC_URL=public) as client:
        response = await client.post(
            PATH + "/company" + query, content=body, headers=v3_headers(body, signed_uri)
        )
        internal = await client.post(
            PATH + "/company" + query,
            content=body,
            headers=v3_headers(body, BASE + PATH + "/company?portal=62515&note=a:b%20c/d"),
        )
    assert response.status_code == 200, response.text
    assert internal.status_code == 401  # signed for the internal URL, not the public one
    assert len(await stored(db)) == 1


async def test_refused_signatures_are_401_naming_the_check_and_store_nothing(
    db: Database,
) -> None:
    body = encode([change(501)])
    now = int(time.time() * 1000)
    tampered = encode([change(501, value="Evil")])
    cases = {
        "tampered body": (tampered, v3_headers(body)),
        "wrong secret": (body, v3_headers(body, secret="another-secret")),
        "stale": (body, v3_headers(body, at_ms=now - 6 * 60 * 1000)),
        "far future": (body, v3_headers(body, at_ms=now + 6 * 60 * 1000)),
        "no headers": (body, {"Content-Type": "application/json"}),
        "no timestamp": (
            body,
            {k: v for k, v in v3_headers(body).items() if k != "X-HubSpot-Request-Timestamp"},
        ),
        "garbage timestamp": (body, {**v3_headers(body), "X-HubSpot-Request-Timestamp": "soon"}),
    }
    expected = {
        "tampered body": "does not match",
        "wrong secret": "does not match",
        "stale": "older than 5 minutes",
        "far future": "in the future",
        "no headers": "no accepted signature header",
        "no timestamp": "X-HubSpot-Request-Timestamp is missing",
        "garbage timestamp": "not epoch milliseconds",
    }
    async with service(db) as client:
        for name, (content, headers) in cases.items():
            response = await client.post(PATH, content=content, headers=headers)
            assert response.status_code == 401, name
            detail = response.json()["detail"]
            assert expected[name] in detail, (name, detail)
            assert SECRET not in response.text
            assert v3("POST", BASE + PATH, content, "0") not in response.text
    assert await stored(db) == []
    assert await jobs(db) == []


async def test_v1_is_refused_unless_configured_and_accepted_when_it_is(db: Database) -> None:
    body = encode([change(501)])
    headers = {
        "Content-Type": "application/json",
        "X-HubSpot-Signature": hashlib.sha256(SECRET.encode() + body).hexdigest(),
        "X-HubSpot-Signature-Version": "v1",
    }
    async with service(db) as client:
        refused = await client.post(PATH, content=body, headers=headers)
    assert refused.status_code == 401
    assert "v1 is not accepted" in refused.json()["detail"]
    assert await stored(db) == []
    async with service(db, HUBSPOT_WEBHOOK_SIGNATURES="v3,v1") as client:
        accepted = await client.post(PATH, content=body, headers=headers)
        forged = await client.post(
            PATH, content=body, headers={**headers, "X-HubSpot-Signature": "0" * 64}
        )
    assert accepted.status_code == 200, accepted.text
    assert forged.status_code == 401
    assert len(await stored(db)) == 1


async def test_v2_signs_method_and_uri_when_configured(db: Database) -> None:
    body = encode([change(501)])
    uri = BASE + PATH + "?x=1"
    signature = hashlib.sha256(SECRET.encode() + b"POST" + uri.encode() + body).hexdigest()
    headers = {"X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": "v2"}
    async with service(db, HUBSPOT_WEBHOOK_SIGNATURES="v2") as client:
        accepted = await client.post(PATH + "?x=1", content=body, headers=headers)
        other_path = await client.post(PATH + "?x=2", content=body, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert other_path.status_code == 401


async def test_no_secret_configured_is_503(db: Database) -> None:
    settings = Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_MODE": "production",
            "HUBSYNC_WORKER": "false",
            "HUBSPOT_ACCESS_TOKEN": "pat-not-real",
        }
    )
    async with running(create_app(settings), base_url=BASE) as client:
        response = await deliver(client, [change(501)])
    assert response.status_code == 503
    assert "webhook secret not configured" in response.json()["detail"]
    assert await stored(db) == []


# -- body and shape --------------------------------------------------------------------------


async def test_bodies_over_one_mebibyte_are_413(db: Database) -> None:
    big = b"[" + b" " * (1 << 20) + b"]"
    async with service(db) as client:
        declared = await client.post(PATH, content=big, headers=v3_headers(big))

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(17):
                yield b" " * 65536

        streamed = await client.post(PATH, content=chunks(), headers=v3_headers(b""))
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert await stored(db) == []


async def test_malformed_deliveries_are_400_saying_what_and_where(db: Database) -> None:
    bodies = {
        b"{oops": "not valid JSON",
        b'{"a": 1}': "expected a JSON array",
        encode([change(501), {"subscriptionType": "company.creation", "occurredAt": T0}]): (
            "event 1: objectId is required"
        ),
        encode([change(501, propertyName=None) | {"propertyName": None}]): (
            "event 0: propertyName is required"
        ),
    }
    async with service(db) as client:
        for body, message in bodies.items():
            response = await client.post(PATH, content=body, headers=v3_headers(body))
            assert response.status_code == 400, body
            assert message in response.json()["detail"]
    assert await stored(db) == []


# -- database down, operators ----------------------------------------------------------------


class TcpProxy:
    """A loopback TCP relay to PostgreSQL that can be cut, to take the database away from a
    running service."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


@pytest.mark.postgres
async def test_database_down_is_503_never_2xx(postgres_url: str) -> None:
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port)
    settings = Settings.from_mapping(
        {
            "HUBSYNC_MODE": "demo",
            "HUBSYNC_DATABASE_URL": through_proxy.render_as_string(hide_password=False),
            "WARP_CUSTOMERS_TABLE": "accounts.customers",
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_SCHEDULER": "false",
            "HUBSYNC_DEMO_DATA": "false",
            "HUBSPOT_CLIENT_SECRET": SECRET,
        }
    )
    async with running(create_app(settings), base_url=BASE) as client:
        before = await deliver(client, [change(501)])
        await proxy.cut()
        during = await deliver(client, [change(502)])
    assert before.status_code == 200, before.text
    assert during.status_code == 503
    assert "not stored" in during.json()["detail"]
