"""Who is synced with whom: each job's customer and company, found before anything is decided.

Outbound (a customer job): the customer from WARP, its link and field memory. Inbound (a
company job, from a webhook): the company from HubSpot (merged-away ids followed to the
survivor), then its customer by link or by `warp_ban`. A job that cannot be paired ends here,
with the reason recorded (unknown customer, deleted company, company without customer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.hubspot.errors import HubSpotError, HubSpotNotFoundError
from app.hubspot.models import BatchResult, HubSpotCompany
from app.store import sync_state
from app.store.sync_state import Link
from app.sync.batch import SyncBatch
from app.sync.jobs import ClaimedJob
from app.sync.pairs import Pair
from app.sync.rules import IDENTITY_HUBSPOT_PROPERTY, FieldRule
from app.warp.connector import WarpConnector, canonical_id

ReadCompanies = Callable[[list[str], str | None], Awaitable[BatchResult | HubSpotError]]


async def pairs_from_customers(
    jobs: list[ClaimedJob], batch: SyncBatch, *, db: AsyncEngine, warp: WarpConnector
) -> list[Pair]:
    customers = await warp.fetch_customers([job.entity_key for job in jobs])
    ids = list(customers)
    async with db.connect() as connection:
        links = await sync_state.links_by_customer(connection, ids)
        memory = await sync_state.field_memory(connection, ids)
    pairs = []
    for job in jobs:
        customer = customers.get(_canonical(job.entity_key))
        if customer is None:
            message = f"customer {job.entity_key} not found in WARP"
            batch.fail(job, message, "not_found", customer_id=job.entity_key)
            continue
        link = links.get(customer["id"])
        if link is not None and link.state == "deleted":
            batch.skip(
                job,
                f"HubSpot company {link.hubspot_company_id} was deleted; not recreated "
                "(restore it in HubSpot, or relink it by hand)",
                customer_id=customer["id"],
                company_id=link.hubspot_company_id,
            )
            continue
        pairs.append(Pair(job, customer, link, memory.get(customer["id"], {})))
    return pairs


async def pairs_from_companies(
    jobs: list[ClaimedJob],
    rules: list[FieldRule],
    batch: SyncBatch,
    *,
    db: AsyncEngine,
    warp: WarpConnector,
    read: ReadCompanies,
) -> list[Pair]:
    """Inbound work: read each company, then find its customer."""
    async with db.connect() as connection:
        resolved = await sync_state.resolve_company_ids(connection, [j.entity_key for j in jobs])
    seen_at = datetime.now(UTC)  # a 404 in the answer means "gone as of" this moment
    result = await read([resolved[j.entity_key] for j in jobs], None)
    if isinstance(result, HubSpotError):
        for job in jobs:
            batch.fail_hubspot(job, result, company_id=job.entity_key)
        return []
    companies: dict[str, HubSpotCompany] = {}
    async with db.begin() as connection:
        for job in jobs:
            company_id = resolved[job.entity_key]
            outcome = result.get(company_id)
            if outcome is not None and outcome.company is not None:
                companies[job.entity_key] = outcome.company
                continue
            error = outcome.error if outcome else None
            if error is not None and not isinstance(error, HubSpotNotFoundError):
                batch.fail_hubspot(job, error, company_id=company_id)
                continue
            # Unless a restore that happened after our read was applied meanwhile.
            marked = await sync_state.set_link_state(connection, company_id, "deleted", at=seen_at)
            batch.skip(
                job,
                f"HubSpot company {company_id} no longer exists; "
                + (
                    "link marked deleted"
                    if marked
                    else "no link changed (none, or a newer restore)"
                ),
                company_id=company_id,
            )
    return await _match_customers(jobs, companies, rules, batch, db=db, warp=warp)


async def _match_customers(
    jobs: list[ClaimedJob],
    companies: dict[str, HubSpotCompany],
    rules: list[FieldRule],
    batch: SyncBatch,
    *,
    db: AsyncEngine,
    warp: WarpConnector,
) -> list[Pair]:
    """Each company's customer: by link first, else by `warp_ban`; none = unmatched."""
    async with db.connect() as connection:
        links = await sync_state.links_by_company(connection, [c.id for c in companies.values()])
    bans = [c.properties.get(IDENTITY_HUBSPOT_PROPERTY) or "" for c in companies.values()]
    by_ban = await warp.fetch_customers_by_ban([b for b in bans if b])
    by_id = await warp.fetch_customers(
        [link.warp_customer_id for link in links.values() if link.warp_customer_id]
    )
    matched: list[tuple[ClaimedJob, HubSpotCompany, dict[str, Any], Link | None]] = []
    async with db.begin() as connection:
        for job in jobs:
            company = companies.get(job.entity_key)
            if company is None:
                continue
            link = links.get(company.id)
            customer = by_id.get(link.warp_customer_id) if link and link.warp_customer_id else None
            ban = company.properties.get(IDENTITY_HUBSPOT_PROPERTY) or ""
            if customer is None and ban:
                customer = by_ban.get(ban)
            if customer is None:
                await sync_state.save_link(
                    connection,
                    customer_id=None,
                    company_id=company.id,
                    ban=ban or None,
                    state="unmatched",
                )
                batch.skip(
                    job,
                    f"HubSpot company {company.id} has no WARP customer"
                    + (f" with ban {ban}" if ban else " (no warp_ban)"),
                    company_id=company.id,
                    outcome="unmatched",
                )
                continue
            matched.append((job, company, customer, link))
        customer_ids = [customer["id"] for _, _, customer, _ in matched]
        memory = await sync_state.field_memory(connection, customer_ids)
        existing = await sync_state.links_by_customer(connection, customer_ids)
    pairs = []
    for job, company, customer, link in matched:
        pair = Pair(
            job, customer, link or existing.get(customer["id"]), memory.get(customer["id"], {})
        )
        pair.read_hubspot(rules, company)
        pairs.append(pair)
    return pairs


def _canonical(key: str) -> str:
    try:
        return canonical_id(key)
    except ValueError:
        return key
