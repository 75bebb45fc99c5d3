"""The embedded demo (HUBSYNC_MODE=demo): the in-memory sandbox and hubsync's database agree.

The sandbox starts empty at every start while the demo database keeps its links. Instead of
forgetting the links (which, on the wrong database, would wipe a production deployment's sync
state), the sandbox is refilled from them: each linked company comes back under its own id
with the HubSpot values hubsync last saw. Then, on the embedded SQLite default only (demo
data never goes into PostgreSQL), every demo customer is queued so a newcomer sees a sync.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.context import AppContext
from app.sandbox.sandbox import Sandbox
from app.store import sync_state
from app.store.sync_config import load_rules
from app.sync.jobs import EntityType, JobDirection, JobSource

log = logging.getLogger("hubsync.demo")


async def refill_sandbox(context: AppContext, sandbox: Sandbox) -> int:
    """Put every actively linked company back into the empty sandbox; how many. A failure
    (e.g. not migrated yet: /readyz says so) is logged, not fatal."""
    try:
        restored = await _refill(context, sandbox)
    except Exception:
        log.exception("demo: could not refill the sandbox from the links")
        return 0
    if restored:
        log.info("demo: restored %d linked companies into the sandbox", restored)
    return restored


async def _refill(context: AppContext, sandbox: Sandbox) -> int:
    links, states = sync_state.links, sync_state.field_states
    async with context.engine.connect() as connection:
        rules = {rule.warp_field: rule.hubspot_property for rule in await load_rules(connection)}
        linked = (
            await connection.execute(
                select(links.c.warp_customer_id, links.c.hubspot_company_id, links.c.warp_ban)
                .where(links.c.state == "active", links.c.hubspot_company_id.is_not(None))
                .order_by(links.c.id)
            )
        ).all()
        values = (
            await connection.execute(
                select(states.c.warp_customer_id, states.c.field, states.c.hubspot_value)
            )
        ).all()
    properties: dict[str, dict[str, object]] = {}
    for customer_id, field, value in values:
        if field in rules and value is not None:
            properties.setdefault(customer_id, {})[rules[field]] = value
    restored = 0
    for customer_id, company_id, ban in linked:
        if sandbox.companies.find(company_id) is not None:
            continue
        known = properties.get(customer_id or "", {})
        raw = {**known, "warp_ban": known.get("warp_ban", ban)} if ban else known
        try:
            sandbox.companies.seed(company_id, raw, sandbox.api_source)
        except Exception as exc:  # noqa: BLE001 -- one odd row must not stop the demo
            log.warning("demo: could not restore company %s: %s", company_id, exc)
            continue
        restored += 1
    return restored


async def queue_every_customer(context: AppContext) -> None:
    try:
        await _queue_every_customer(context)
    except Exception:  # e.g. not migrated yet: /readyz reports it
        log.exception("demo: could not queue the demo customers")


async def _queue_every_customer(context: AppContext) -> None:
    queue = context.extras["queue"]
    queued = 0
    async for customers in context.warp.iter_customers():
        async with context.engine.begin() as connection:
            await queue.enqueue_many(
                connection,
                EntityType.CUSTOMER,
                [customer["id"] for customer in customers],
                source=JobSource.OPERATOR,
                direction=JobDirection.TO_HUBSPOT,
            )
        queued += len(customers)
    context.extras["worker"].wake()
    log.info("demo: queued all %d WARP customers for a sync with the sandbox", queued)
