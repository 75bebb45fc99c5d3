"""Shared by the webhook intake tests: settings, independently computed signatures, events,
and what the database holds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import Table, select

from app.main import create_app
from app.settings import Settings
from app.store.models import CompanyAlias, EntityLink, SyncJob, WebhookEvent
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
