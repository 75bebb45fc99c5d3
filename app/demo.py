"""The embedded demo (HUBSYNC_MODE=demo): the in-memory sandbox and hubsync's database agree.

The sandbox starts empty at every start while the demo database keeps its links. Instead of
forgetting the links (which, on the wrong database, would wipe a production deployment's sync
state), the sandbox is refilled from them: each linked company comes back under its own id
with the HubSpot values hubsync last saw. Then, on the embedded SQLite default only (demo
data never goes into PostgreSQL), every demo customer is queued so a newcomer sees a sync.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select

from app.context import AppContext, require
from app.sandbox.sandbox import Sandbox
from app.store import sync_state, widened
from app.store.sync_config import load_rules
from app.sync.core.jobs import (
    ClaimedJob,
    EntityType,
    JobDirection,
    JobHandler,
    JobOutcome,
    JobSource,
)

log = logging.getLogger("hubsync.demo")


class SandboxRefill:
    """Puts every actively linked company back into the empty sandbox, once.

    At start-up when the portal is verified then (before the worker starts: no job may meet
    the empty sandbox); a failure there (e.g. not migrated yet: /readyz says so) is logged,
    not fatal. Otherwise — the portal could not be checked at start, the database was down —
    before the first batch, once the portal guard lets it through: a 404 from an empty
    sandbox would mark a link deleted. A failed refill there fails the batch, which the worker
    retries. The refill skips companies already there, so two racing do no harm."""

    def __init__(self, context: AppContext, sandbox: Sandbox) -> None:
        self.context = context
        self.sandbox = sandbox
        self.done = False

    async def at_start(self) -> None:
        try:
            await self.run()
        except Exception:
            log.exception("demo: could not refill the sandbox from the links")

    async def run(self) -> None:
        if self.done:
            return
        restored = await _refill(self.context, self.sandbox)
        self.done = True
        if restored:
            log.info("demo: restored %d linked companies into the sandbox", restored)

    def first(self, handler: JobHandler) -> JobHandler:
        """`handler`, run only after the refill."""

        async def handle(jobs: Sequence[ClaimedJob]) -> Sequence[JobOutcome]:
            await self.run()
            return await handler(jobs)

        return handle


async def _refill(context: AppContext, sandbox: Sandbox) -> int:
    links, states = sync_state.links, sync_state.field_states
    async with context.engine.connect() as connection:
        rules = {rule.warp_field: rule.hubspot_property for rule in await load_rules(connection)}
        linked = (
            await connection.execute(
                select(
                    links.c.warp_customer_id,
                    links.c.hubspot_company_id,
                    widened.column(links, "warp_ban"),
                )
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
    queue = require(context.queue, "queue")
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
    require(context.worker, "worker").wake()
    log.info("demo: queued all %d WARP customers for a sync with the sandbox", queued)
