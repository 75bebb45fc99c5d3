"""Writing WARP at the end of a sync: HubSpot-won fields and new HubSpot ids, each customer's
row on its own and compare-and-set on the values the sync read (`WarpConnector.write_many`).

A row the database refuses (a constraint) fails its job for good, with the database's reason,
and every other row is written. A row WARP changed since the sync read it is not written: the
engine decides that customer again from fresh reads (`reread_pairs`), so a change made in
WARP during a sync is never overwritten.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.store import sync_state
from app.sync.core.mapping import get_path
from app.sync.core.rules import FieldRule
from app.sync.engine.batch import SyncBatch
from app.sync.engine.pairs import Pair
from app.warp.connector import Refusal, WarpConnector, WarpWrite


async def write_warp(
    warp: WarpConnector, pairs: list[Pair], rules: list[FieldRule], batch: SyncBatch
) -> list[Pair]:
    """Write WARP for these pairs; returns those WARP changed under (to decide again)."""
    writes: list[WarpWrite] = []
    for pair in pairs:
        fields = pair.warp_updates(rules)
        write = WarpWrite(
            pair.customer_id,
            fields,
            pair.warp_company_id(),
            expected={path: get_path(pair.customer, path) for path in fields},
        )
        if write.fields or write.hubspot_company_id:
            writes.append(write)
    try:
        refusals = await warp.write_many(writes)
    except Exception as exc:  # noqa: BLE001 -- WARP unreachable: retry these jobs later
        written = {write.customer_id for write in writes}
        for pair in pairs:
            if pair.customer_id in written:
                _fail(
                    batch,
                    pair,
                    f"WARP write failed: {type(exc).__name__}: {exc}",
                    "warp",
                    retry=True,
                )
        return []
    changed: list[Pair] = []
    for pair in pairs:
        refusal = refusals.get(pair.customer_id)
        if refusal is None:
            continue
        if refusal.kind is Refusal.CHANGED:
            changed.append(pair)
        elif refusal.kind is Refusal.MISSING:  # deleted meanwhile: the retry says so
            _fail(batch, pair, refusal.reason, "not_found", retry=True)
        else:
            _fail(batch, pair, refusal.reason, "warp")
    return changed


async def reread_pairs(
    pairs: list[Pair], batch: SyncBatch, *, db: AsyncEngine, warp: WarpConnector
) -> list[Pair]:
    """Fresh pairs (customer, link, field memory read again) for the same jobs."""
    ids = [pair.customer_id for pair in pairs]
    customers = await warp.fetch_customers(ids)
    async with db.connect() as connection:
        links = await sync_state.links_by_customer(connection, ids)
        memory = await sync_state.field_memory(connection, ids)
    fresh = []
    for pair in pairs:
        customer = customers.get(pair.customer_id)
        if customer is None:
            message = f"customer {pair.customer_id} not found in WARP"
            _fail(batch, pair, message, "not_found", retry=True)
            continue
        link = links.get(pair.customer_id)
        fresh.append(Pair(pair.job, customer, link, memory.get(pair.customer_id, {})))
    return fresh


def _fail(batch: SyncBatch, pair: Pair, message: str, kind: str, *, retry: bool = False) -> None:
    batch.fail(
        pair.job,
        message,
        kind,
        customer_id=pair.customer_id,
        company_id=pair.company_id,
        retry=retry,
    )
