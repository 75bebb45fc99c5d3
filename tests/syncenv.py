"""A whole sync stack for tests: a migrated database with WARP's customers table, the HubSpot
sandbox with hubsync's properties bootstrapped, a real HubSpot client, the WARP connector and
the sync engine — everything real except HubSpot itself."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from app.hubspot.client import HubSpotClient
from app.hubspot.models import BatchResult, UpdateInput, UpsertInput
from app.hubspot.properties import ensure_properties
from app.hubspot.ratelimit import LocalRateLimiter
from app.sandbox.config import SandboxConfig
from app.sandbox.sandbox import Sandbox
from app.sandbox.store import ALL
from app.sandbox.testing import SANDBOX_BASE_URL, TEST_TOKEN, running_sandbox
from app.settings import RateLimit, Secret
from app.store.models import SEARCH_BUCKET
from app.sync.core.jobs import (
    ClaimedJob,
    EntityType,
    JobDirection,
    JobOutcome,
    JobSource,
    OutcomeStatus,
)
from app.sync.engine.engine import SyncEngine
from app.warp.connector import SqlWarpConnector
from app.warp.schema import customers_table
from tests.conftest import Database

_job_ids = itertools.count(1)


class RecordingHubSpot:
    """The real client, with a note of every batch write the engine asks for."""

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client
        self.reads: list[list[str]] = []
        self.history_reads: list[list[str]] = []  # reads asking for propertiesWithHistory
        self.updates: list[list[UpdateInput]] = []
        self.upserts: list[list[UpsertInput]] = []

    async def batch_read_companies(
        self,
        ids: Sequence[str],
        properties: Sequence[str],
        id_property: str | None = None,
        *,
        properties_with_history: Sequence[str] = (),
    ) -> BatchResult:
        if properties_with_history:
            self.history_reads.append(list(ids))
        else:
            self.reads.append(list(ids))
        return await self.client.batch_read_companies(
            ids, properties, id_property, properties_with_history=properties_with_history
        )

    async def batch_upsert_companies(
        self, inputs: Sequence[UpsertInput], id_property: str = "warp_ban"
    ) -> BatchResult:
        self.upserts.append(list(inputs))
        return await self.client.batch_upsert_companies(inputs, id_property)

    async def batch_update_companies(self, inputs: Sequence[UpdateInput]) -> BatchResult:
        self.updates.append(list(inputs))
        return await self.client.batch_update_companies(inputs)

    def forget(self) -> None:
        self.reads.clear()
        self.history_reads.clear()
        self.updates.clear()
        self.upserts.clear()


@dataclass
class SyncEnv:
    db: Database
    sandbox: Sandbox
    client: HubSpotClient
    hubspot: RecordingHubSpot
    warp: SqlWarpConnector
    engine: SyncEngine
    customers: list[str] = field(default_factory=list)

    async def add_customer(self, **values: Any) -> str:
        customer_id = str(uuid.uuid4())
        number = len(self.customers) + 1
        row = {
            "id": customer_id,
            "ban": f"ZT-{100000000 + number}",
            "company_name": f"Customer {number} Ltd",
            "customer_type": "POSTPAID",
            "status": "ACTIVE",
            "credit_limit": Decimal("1000"),
            "current_balance": Decimal("12.50"),
            "contact": {"email": f"billing@customer{number}.example"},
            "services": {
                "voice": {"enabled": True},
                "messaging": {"enabled": False},
                "data": {"enabled": True},
            },
            "external_ids": {},
            "updated_at": datetime.now(UTC),
            **values,
        }
        table = customers_table(self.db.customers_table)
        async with self.db.engine.begin() as connection:
            await connection.execute(table.insert().values(**row))
        self.customers.append(customer_id)
        return customer_id

    async def customer(self, customer_id: str) -> dict[str, Any]:
        return (await self.warp.fetch_customers([customer_id]))[customer_id]

    async def sync(
        self,
        *keys: str,
        entity_type: EntityType = EntityType.CUSTOMER,
        direction: JobDirection = JobDirection.TO_HUBSPOT,
    ) -> list[JobOutcome]:
        jobs = [job(key, entity_type, direction) for key in keys]
        return await self.engine(jobs)

    def company(self, company_id: str) -> dict[str, Any]:
        """The company's properties as the sandbox holds them (strings)."""
        company = self.sandbox.companies.require(company_id)
        return company.to_json(ALL)["properties"]  # type: ignore[no-any-return]

    def companies_with_ban(self, ban: str) -> list[str]:
        return [c.id for c in self.sandbox.companies.active() if c.value("warp_ban") == ban]


async def synced(env: SyncEnv, **values: Any) -> tuple[str, str]:
    """A new customer, synced once: (customer id, company id)."""
    customer_id = await env.add_customer(**values)
    [outcome] = await env.sync(customer_id)
    assert outcome.status is OutcomeStatus.DONE, outcome.error
    assert outcome.result is not None
    return customer_id, outcome.result["hubspot_company_id"]


def job(
    key: str,
    entity_type: EntityType = EntityType.CUSTOMER,
    direction: JobDirection = JobDirection.TO_HUBSPOT,
    source: JobSource = JobSource.API,
) -> ClaimedJob:
    return ClaimedJob(
        id=next(_job_ids),
        entity_type=entity_type,
        entity_key=key,
        direction=direction,
        source=source,
        priority=5,
        attempts=1,
        created_at=datetime.now(UTC),
    )


@asynccontextmanager
async def sync_env(db: Database, config: SandboxConfig | None = None) -> AsyncIterator[SyncEnv]:
    config = config or SandboxConfig(rate_limit=RateLimit(1000, 1.0), search_index_delay_seconds=0)
    async with running_sandbox(config) as running:
        client = HubSpotClient(
            base_url=SANDBOX_BASE_URL,
            access_token=Secret(TEST_TOKEN),
            limiter=LocalRateLimiter(config.rate_limit),
            search_limiter=LocalRateLimiter(config.search_rate_limit, bucket=SEARCH_BUCKET),
            transport=running.client._transport,
        )
        async with client:
            await ensure_properties(client)
            recording = RecordingHubSpot(client)
            warp = SqlWarpConnector(db.engine, db.customers_table)
            engine = SyncEngine(engine=db.engine, warp=warp, hubspot=recording)
            yield SyncEnv(db, running.sandbox, client, recording, warp, engine)


async def rows(db: Database, table: Any, *where: Any) -> list[Any]:
    async with db.engine.connect() as connection:
        return list(await connection.execute(select(table).where(*where)))
