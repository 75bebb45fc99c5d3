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
from app.sync.core.identity import ban_problem, normalize_ban, shown, usable_ban
from app.sync.core.jobs import ClaimedJob
from app.sync.core.records import Link
from app.sync.core.rules import IDENTITY_HUBSPOT_PROPERTY, FieldRule
from app.sync.engine.batch import SyncBatch
from app.sync.engine.pairs import Pair, asked_at
from app.warp.connector import WarpConnector, canonical_id

MERGED = "merged"  # the link's company was merged into one another customer holds
WARP_DELETED = "warp_deleted"  # the customer was deleted in WARP
ReadCompanies = Callable[[list[str], str | None], Awaitable[BatchResult | HubSpotError]]


async def pairs_from_customers(
    jobs: list[ClaimedJob], batch: SyncBatch, *, db: AsyncEngine, warp: WarpConnector
) -> list[Pair]:
    keys = {job.id: _canonical(job.entity_key) for job in jobs}
    customers = await warp.fetch_customers(list(keys.values()))
    async with db.connect() as connection:
        links = await sync_state.links_by_customer(connection, list(set(keys.values())))
        memory = await sync_state.field_memory(connection, list(customers))
        merged = [link for link in links.values() if link.state == MERGED]
        survivors = await sync_state.resolve_company_ids(
            connection, [link.hubspot_company_id or "" for link in merged]
        )
        holders = await sync_state.links_by_company(connection, list(set(survivors.values())))
    pairs = []
    gone: list[str] = []
    for job in jobs:
        customer = customers.get(keys[job.id])
        link = links.get(keys[job.id])
        if customer is None and link is not None and link.hubspot_company_id is not None:
            gone.append(keys[job.id])
            batch.skip(
                job,
                warp_deleted_reason(keys[job.id], link.hubspot_company_id),
                customer_id=keys[job.id],
                company_id=link.hubspot_company_id,
                outcome=WARP_DELETED,
            )
            continue
        if customer is None:
            message = f"customer {job.entity_key} not found in WARP"
            batch.fail(job, message, "not_found", customer_id=job.entity_key)
            continue
        if link is not None and link.state == "deleted":
            batch.skip(
                job,
                f"HubSpot company {link.hubspot_company_id} was deleted; not recreated "
                "(restore it in HubSpot, or relink it by hand)",
                customer_id=customer["id"],
                company_id=link.hubspot_company_id,
            )
            continue
        if link is not None and link.state == MERGED:
            survivor = survivors.get(link.hubspot_company_id or "", link.hubspot_company_id)
            holder = holders.get(survivor or "")
            batch.skip(
                job,
                merged_reason(customer["id"], link.hubspot_company_id, survivor, holder),
                customer_id=customer["id"],
                company_id=link.hubspot_company_id,
                outcome=MERGED,
            )
            continue
        pairs.append(Pair(job, customer, link, memory.get(customer["id"], {})))
    await _adopt_unmatched(pairs, db)
    if gone:
        async with db.begin() as connection:
            await sync_state.set_customer_link_state(connection, gone, WARP_DELETED)
    return pairs


async def _adopt_unmatched(pairs: list[Pair], db: AsyncEngine) -> None:
    """A customer without a link takes the company hubsync saw earlier without a customer
    under the same (normalised) ban: HubSpot's lookup by `warp_ban` is exact and would miss
    `"ZT-100000001 "`, and the upsert would make a second company."""
    bans = {pair.ban: pair for pair in pairs if pair.link is None and usable_ban(pair.ban)}
    if not bans:
        return
    async with db.connect() as connection:
        found = await sync_state.unmatched_links_by_ban(connection, sorted(bans))
    for ban, link in found.items():
        bans[ban].link = link


async def hold_taken(pairs: list[Pair], batch: SyncBatch, *, db: AsyncEngine) -> list[Pair]:
    """The pairs minus those whose HubSpot company another customer holds; those are held.

    A company read (or written) under another id than the link's was merged in HubSpot; a
    company found by `warp_ban` may already be another customer's. Writing this customer onto
    it would overwrite the other customer's values and steal its link, so the customer is held
    (link state `merged`) for an operator instead. The merge webhook, when it arrives, moves
    the link of the customer whose company survived to the survivor."""
    moved = [
        p
        for p in pairs
        if p.company is not None and (p.link is None or p.link.hubspot_company_id != p.company.id)
    ]
    if not moved:
        return pairs
    held: list[Pair] = []
    async with db.begin() as connection:
        candidates = {p.job.id: _merged_family(p) for p in moved}
        holders = await sync_state.links_by_company(
            connection, sorted({c for ids in candidates.values() for c in ids})
        )
        for pair in moved:
            holder = next(
                (
                    link
                    for c in candidates[pair.job.id]
                    if (link := holders.get(c)) is not None
                    and link.state == "active"
                    and link.warp_customer_id not in (None, pair.customer_id)
                ),
                None,
            )
            if holder is None:
                continue
            old = pair.link.hubspot_company_id if pair.link else None
            await sync_state.save_link(
                connection, customer_id=pair.customer_id, company_id=old, ban=pair.ban, state=MERGED
            )
            survivor = pair.company.id if pair.company else None
            batch.skip(
                pair.job,
                merged_reason(pair.customer_id, old, survivor, holder),
                customer_id=pair.customer_id,
                company_id=old,
                outcome=MERGED,
            )
            held.append(pair)
    return [p for p in pairs if p not in held]


def _merged_family(pair: Pair) -> list[str]:
    """The company and the ids HubSpot says were merged into it."""
    assert pair.company is not None  # noqa: S101 -- only called for pairs with a company
    merged = pair.company.properties.get("hs_merged_object_ids") or ""
    return [pair.company.id, *(i for i in merged.split(";") if i)]


def warp_deleted_reason(customer_id: str, company_id: str | None) -> str:
    return (
        f"customer {customer_id} no longer exists in WARP; the link to HubSpot company "
        f"{company_id} is marked {WARP_DELETED} and syncing it stopped (a customer back in "
        "WARP syncs again)"
    )


def merged_reason(
    customer_id: str, company_id: str | None, survivor: str | None, holder: Link | None
) -> str:
    held_by = (
        f", which is linked to customer {holder.warp_customer_id}"
        if holder is not None and holder.warp_customer_id not in (None, customer_id)
        else ""
    )
    return (
        f"HubSpot company {company_id} was merged into {survivor}{held_by}; customer "
        f"{customer_id} is held (link state {MERGED}, nothing written) until an operator "
        f"relinks it (POST /v1/sync/customers/{customer_id}/relink with "
        '{"hubspot_company_id": ...}) or splits it ({"action": "split"}: a company of its own)'
    )


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
    seen_at = asked_at()  # a 404 in the answer means "gone as of" this moment
    result = await read([resolved[j.entity_key] for j in jobs], None)
    read_at = datetime.now(UTC)
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
    pairs = await _match_customers(jobs, companies, rules, batch, db=db, warp=warp)
    for pair in pairs:
        pair.read_at = read_at
    return pairs


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
    bans = [usable_ban(c.properties.get(IDENTITY_HUBSPOT_PROPERTY)) for c in companies.values()]
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
            ban = normalize_ban(company.properties.get(IDENTITY_HUBSPOT_PROPERTY)) or ""
            problem = ban_problem(ban) if ban else None
            if customer is None and ban and problem is None:
                customer = by_ban.get(ban)
            if customer is None and link is not None and link.warp_customer_id:
                await sync_state.set_customer_link_state(
                    connection, [link.warp_customer_id], WARP_DELETED
                )
                batch.skip(
                    job,
                    warp_deleted_reason(link.warp_customer_id, company.id),
                    customer_id=link.warp_customer_id,
                    company_id=company.id,
                    outcome=WARP_DELETED,
                )
                continue
            if customer is None:
                await sync_state.save_link(
                    connection,
                    customer_id=None,
                    company_id=company.id,
                    ban=ban if ban and problem is None else None,
                    state="unmatched",
                )
                why = f" with ban {ban}" if ban else " (no warp_ban)"
                if problem is not None:
                    why = f": its warp_ban {shown(ban)!r} cannot be used ({problem})"
                batch.skip(
                    job,
                    f"HubSpot company {company.id} has no WARP customer{why}",
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


def one_pair_per_customer(
    pairs: list[Pair],
) -> tuple[list[Pair], list[tuple[ClaimedJob, ClaimedJob]]]:
    """One pair per customer, and (follower job, lead job) for the jobs that resolved to a
    customer another job of the batch already holds — a customer job and a company job for
    the company a person created with that `warp_ban`, say. HubSpot refuses a batch naming one
    record twice, and both jobs mean the same sync: the lead does it, its followers share
    its outcome. The lead is the pair that knows the most: the company of the customer's own
    link, else a company already read, else the first."""
    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.customer_id, []).append(pair)
    leads: list[Pair] = []
    followers: list[tuple[ClaimedJob, ClaimedJob]] = []
    for group in groups.values():
        lead = min(group, key=_knowledge)
        leads.append(lead)
        followers += [(pair.job, lead.job) for pair in group if pair is not lead]
    return leads, followers


def _knowledge(pair: Pair) -> int:
    """0 for the best lead (see `one_pair_per_customer`)."""
    linked = pair.link.hubspot_company_id if pair.link else None
    if pair.company is not None and pair.company.id == linked:
        return 0
    return 1 if pair.company is not None else 2


def _canonical(key: str) -> str:
    try:
        return canonical_id(key)
    except ValueError:
        return key
