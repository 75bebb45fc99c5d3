"""HubSpot webhook intake end to end: signed deliveries in, stored events and queued jobs out.

Signatures here are computed independently of app/hubspot/signatures.py (plain hmac/hashlib),
so a bug there cannot hide behind the same bug in the test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.engine import make_url

from app.main import create_app
from app.settings import Settings
from app.store.models import CompanyAlias, EntityLink, SyncJob, WebhookEvent
from app.store.webhook_events import finish_events_for_jobs
from app.sync.jobs import JobOutcome, OutcomeStatus
from tests.conftest import Database
from tests.support import running

SECRET = "test-client-secret-not-real"
APP_ID = "1234"
BASE = "http://hubsync.test"
PATH = "/v1/webhooks/hubspot"
TOKEN = "operator-token-for-tests"
T0 = 1_700_000_000_000

events_t: Table = WebhookEvent.__table__  # type: ignore[assignment]
jobs_t: Table = SyncJob.__table__  # type: ignore[assignment]
links_t: Table = EntityLink.__table__  # type: ignore[assignment]
aliases_t: Table = CompanyAlias.__table__  # type: ignore[assignment]


def settings_for(db: Database, **extra: str) -> Settings:
    return Settings.from_mapping(
        {
            **db.env,
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_SCHEDULER": "false",
            # the sandbox's demo start-up forgets every link; these tests set their own
            "HUBSYNC_DEMO_DATA": "false",
            "HUBSPOT_CLIENT_SECRET": SECRET,
            "HUBSPOT_APP_ID": APP_ID,
            "HUBSYNC_API_TOKENS": TOKEN,
            **extra,
        }
    )


def v3(method: str, uri: str, body: bytes, timestamp: str, secret: str = SECRET) -> str:
    message = method.encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def v3_headers(
    body: bytes, uri: str = BASE + PATH, *, secret: str = SECRET, at_ms: int | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000) if at_ms is None else at_ms)
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": v3("POST", uri, body, timestamp, secret),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def change(company: int, value: str = "Acme", at: int = T0, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": 100,
        "subscriptionId": 7,
        "portalId": 62515,
        "appId": 999,
        "occurredAt": at,
        "subscriptionType": "company.propertyChange",
        "attemptNumber": 0,
        "objectId": company,
        "propertyName": "name",
        "propertyValue": value,
        "changeSource": "CRM_UI",
        "sourceId": "userId:42",
        **extra,
    }


def lifecycle(kind: str, company: int, at: int = T0, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": 200,
        "subscriptionId": 2,
        "portalId": 62515,
        "occurredAt": at,
        "subscriptionType": f"company.{kind}",
        "attemptNumber": 0,
        "objectId": company,
        **extra,
    }


def encode(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events, separators=(",", ":")).encode()


@asynccontextmanager
async def service(db: Database, **extra: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings_for(db, **extra)), base_url=BASE) as client:
        yield client


async def deliver(
    client: httpx.AsyncClient, events: list[dict[str, Any]], path: str = PATH
) -> httpx.Response:
    body = encode(events)
    return await client.post(path, content=body, headers=v3_headers(body, BASE + path))


async def stored(db: Database) -> list[Any]:
    async with db.engine.connect() as connection:
        rows = await connection.execute(select(events_t).order_by(events_t.c.id))
        return list(rows)


async def jobs(db: Database) -> list[Any]:
    async with db.engine.connect() as connection:
        rows = await connection.execute(select(jobs_t).order_by(jobs_t.c.id))
        return list(rows)


async def link(db: Database, customer: str | None, company: str, state: str = "active") -> None:
    async with db.engine.begin() as connection:
        await connection.execute(
            links_t.insert().values(
                warp_customer_id=customer, hubspot_company_id=company, state=state
            )
        )


async def links(db: Database) -> dict[str | None, tuple[str | None, str]]:
    """company id -> (customer id, state)"""
    async with db.engine.connect() as connection:
        rows = await connection.execute(select(links_t))
        return {r.hubspot_company_id: (r.warp_customer_id, r.state) for r in rows}


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
        {**db.env, "HUBSYNC_WORKER": "false", "HUBSPOT_ACCESS_TOKEN": "pat-not-real"}
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


# -- dedup -----------------------------------------------------------------------------------


async def test_duplicates_and_replays_store_one_event_and_queue_one_job(db: Database) -> None:
    async with service(db) as client:
        first = await deliver(client, [change(501), change(501, eventId=101)])
        replay = await deliver(client, [change(501, eventId=555, attemptNumber=3)])
    assert first.json()["stored"] == 1
    assert first.json()["duplicates"] == 1
    assert replay.status_code == 200
    assert replay.json()["duplicates"] == 1
    assert len(await stored(db)) == 1
    assert len(await jobs(db)) == 1


async def test_concurrent_duplicate_deliveries_store_one_event(db: Database) -> None:
    async with service(db) as client:
        responses = await asyncio.gather(*(deliver(client, [change(501)]) for _ in range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert sum(r.json()["stored"] for r in responses) == 1
    assert len(await stored(db)) == 1
    assert len(await jobs(db)) == 1


# -- routing ---------------------------------------------------------------------------------


async def test_a_linked_company_queues_its_customer_both_ways(db: Database) -> None:
    await link(db, "C-1", "501")
    async with service(db) as client:
        await deliver(client, [change(501), change(501, value="Acme 2", at=T0 + 1)])
    [job] = await jobs(db)
    assert (job.entity_type, job.entity_key, job.direction) == ("customer", "C-1", "both")
    assert {e.job_id for e in await stored(db)} == {job.id}


async def test_unknown_types_and_our_own_writes_are_stored_ignored(db: Database) -> None:
    ours = change(501, changeSource="INTEGRATION", sourceId=APP_ID)
    other_app = change(502, changeSource="INTEGRATION", sourceId="777")
    contact = change(9, subscriptionType="contact.propertyChange")
    async with service(db) as client:
        response = await deliver(client, [ours, other_app, contact])
    assert response.status_code == 200
    by_object = {e.object_id: e for e in await stored(db)}
    assert (by_object["501"].status, by_object["501"].status_reason) == (
        "ignored",
        "our own write",
    )
    assert by_object["9"].status == "ignored"
    assert "contact.propertyChange" in by_object["9"].status_reason
    assert by_object["502"].status == "queued"
    assert [j.entity_key for j in await jobs(db)] == ["502"]


async def test_deletion_marks_the_link_and_queues_nothing(db: Database) -> None:
    await link(db, "C-1", "501")
    async with service(db) as client:
        await deliver(client, [lifecycle("deletion", 501)])
        later = await deliver(client, [change(501, at=T0 + 5)])
    assert (await links(db))["501"] == ("C-1", "deleted")
    assert await jobs(db) == []
    events = await stored(db)
    assert events[0].status == "processed"
    assert "deleted" in events[0].status_reason
    assert later.json()["ignored"] == 1


async def test_restore_reactivates_the_link_and_queues_a_sync(db: Database) -> None:
    await link(db, "C-1", "501")
    async with service(db) as client:
        await deliver(client, [lifecycle("deletion", 501)])
        await deliver(client, [lifecycle("restore", 501, at=T0 + 10)])
    assert (await links(db))["501"] == ("C-1", "active")
    [job] = await jobs(db)
    assert (job.entity_type, job.entity_key) == ("customer", "C-1")


async def test_a_late_deletion_never_undoes_a_newer_restore(db: Database) -> None:
    await link(db, "C-1", "501")
    async with service(db) as client:
        await deliver(client, [lifecycle("restore", 501, at=T0 + 10)])
        late = await deliver(client, [lifecycle("deletion", 501, at=T0)])
    assert (await links(db))["501"] == ("C-1", "active")
    assert late.json()["ignored"] == 1


async def test_merge_aliases_old_ids_and_moves_the_link_to_the_new_record(db: Database) -> None:
    await link(db, "C-1", "501")
    await link(db, None, "502", state="unmatched")
    merge = lifecycle("merge", 900, primaryObjectId=501, mergedObjectIds=[502], newObjectId=900)
    async with service(db) as client:
        await deliver(client, [merge])
        # A late change to a merged-away id reaches the survivor's customer.
        await deliver(client, [change(502, at=T0 - 5)])
    now = await links(db)
    assert now["900"] == ("C-1", "active")
    assert "501" not in now
    assert now["502"] == (None, "merged")
    async with db.engine.connect() as connection:
        rows = await connection.execute(select(aliases_t.c.old_company_id, aliases_t.c.company_id))
        assert {r.old_company_id: r.company_id for r in rows} == {"501": "900", "502": "900"}
    [job] = await jobs(db)
    assert (job.entity_type, job.entity_key) == ("customer", "C-1")
    assert [e.status for e in await stored(db)] == ["queued", "queued"]


async def test_merge_of_two_linked_companies_keeps_the_primary_link(db: Database) -> None:
    await link(db, "C-1", "501")
    await link(db, "C-2", "502")
    merge = lifecycle("merge", 501, primaryObjectId=501, mergedObjectIds=[502])
    async with service(db) as client:
        await deliver(client, [merge])
    assert await links(db) == {"501": ("C-1", "active"), "502": ("C-2", "merged")}
    [job] = await jobs(db)
    assert job.entity_key == "C-1"


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


async def test_operators_list_events_and_reprocess_them(db: Database) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with service(db) as client:
        await deliver(
            client, [change(501), change(502, changeSource="INTEGRATION", sourceId=APP_ID)]
        )
        unauthorised = await client.get("/v1/webhooks/events")
        ignored = await client.get("/v1/webhooks/events?status=ignored", headers=auth)
        [event] = ignored.json()["events"]
        again = await client.post(
            "/v1/webhooks/events/reprocess", json={"event_ids": [event["id"]]}, headers=auth
        )
        listed = await client.get("/v1/webhooks/events?limit=10", headers=auth)
        bad = await client.get("/v1/webhooks/events?status=nope", headers=auth)
    assert unauthorised.status_code == 401
    assert event["object_id"] == "502"
    assert again.status_code == 200, again.text
    assert again.json()["queued"] == 1
    assert [e["status"] for e in listed.json()["events"]] == ["queued", "queued"]
    assert bad.status_code == 400
    async with db.engine.connect() as connection:
        count = await connection.execute(select(func.count()).select_from(jobs_t))
        assert count.scalar_one() == 2


# -- closing events when their jobs finish ---------------------------------------------------


async def test_finished_jobs_close_their_events(db: Database) -> None:
    async with service(db) as client:
        await deliver(client, [change(501), change(502), change(503)])
    by_object = {e.object_id: e.job_id for e in await stored(db)}
    outcomes = [
        JobOutcome(by_object["501"], OutcomeStatus.DONE),
        JobOutcome(by_object["502"], OutcomeStatus.FAILED, error="HubSpot said 400: bad value"),
        JobOutcome(by_object["503"], OutcomeStatus.RETRY, error="429"),
    ]
    async with db.engine.begin() as connection:
        changed = await finish_events_for_jobs(connection, outcomes)
    after = {e.object_id: e for e in await stored(db)}
    assert changed == 2
    assert (after["501"].status, after["501"].processed_at is not None) == ("processed", True)
    assert (after["502"].status, after["502"].status_reason) == (
        "failed",
        "HubSpot said 400: bad value",
    )
    assert after["503"].status == "queued"


async def test_events_of_a_superseded_job_close_with_the_job_that_absorbed_it(
    db: Database,
) -> None:
    async with service(db) as client:
        await deliver(client, [change(501)])
    [first] = await jobs(db)
    # The queue folds a retried job into a newer pending one of the same entity.
    async with db.engine.begin() as connection:
        await connection.execute(
            jobs_t.update()
            .where(jobs_t.c.id == first.id)
            .values(state="done", last_error_kind="superseded")
        )
        newer = await connection.execute(
            jobs_t.insert()
            .values(entity_type="company", entity_key="501", direction="to_warp")
            .returning(jobs_t.c.id)
        )
        newer_id = newer.scalar_one()
        await finish_events_for_jobs(connection, [JobOutcome(newer_id, OutcomeStatus.DONE)])
    [event] = await stored(db)
    assert event.status == "processed"
