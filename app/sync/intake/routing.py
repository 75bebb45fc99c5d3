"""What a webhook delivery does, inside the one transaction that stores it.

`accept_delivery` stores the events (duplicates skipped by content), then for each new event:

* property change / creation → queue a sync of the company: its WARP customer both ways when
  the company is linked, else the company itself towards WARP;
* deletion → the link is marked `deleted` (syncing stops, visibly); nothing is queued; later
  edits of a company whose link is `deleted`, `merged` or `warp_deleted` are stored and
  ignored with the reason, rather than queueing jobs that can only fail;
* restore → the link becomes live again and a sync is queued;
* merge → every merged-away id becomes an alias of the survivor (`newObjectId` when HubSpot
  made a new record, else `primaryObjectId`) and the link moves to the survivor. If several
  merged companies had links, one is kept — the survivor's own if it has a WARP customer, else
  the first (primary first) that has one — and the others are marked `merged` under their old
  company id, left for an operator (two WARP customers now point at one company; a link
  without a customer is simply superseded by the survivor's sync);
* our own writes (`changeSource` INTEGRATION from HUBSPOT_APP_ID) and unknown types are stored
  and marked ignored;
* an event hubsync cannot act on (a value the database cannot hold, a time out of range; see
  `IncomingEvent.problem`) is stored in a storable form and marked failed with the reason,
  and the log says why; the rest of the delivery goes on as usual.

Deletions and restores arriving out of order never undo a newer one already stored. Work is
queued with `QueueRepository.enqueue_each` on the same connection, so an event is `queued`
exactly when its job exists. No HubSpot call happens here: the job reads the company later.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store import sync_state, webhook_events
from app.store.webhook_events import FAILED, IGNORED, PROCESSED, QUEUED, EventStatus
from app.sync.core.events import (
    OWN_WRITE_REASON,
    EventKind,
    IncomingEvent,
    bound_by_receipt,
    is_own_write,
    parse_event,
)
from app.sync.core.identity import normalize_ban
from app.sync.core.jobs import EntityType, JobDirection, JobSource
from app.sync.core.records import Link

log = logging.getLogger("hubsync.webhooks")

REPROCESS_LIMIT = 1000
# Link states whose company's CRM edits are stored and ignored, with the reason.
_STOPPED = {
    "deleted": "company {company} is deleted in HubSpot; syncing it stopped",
    "warp_deleted": "customer {link.warp_customer_id} of company {company} is deleted in WARP; "
    "syncing it stopped",
    "merged": "company {company} was merged; customer {link.warp_customer_id} is held for an "
    "operator to relink or split",
}
# A customer is synced both ways; a company without one towards WARP.
_DIRECTIONS = {EntityType.CUSTOMER: JobDirection.BOTH, EntityType.COMPANY: JobDirection.TO_WARP}
_ROUTED = (EventKind.CREATION, EventKind.PROPERTY_CHANGE, EventKind.RESTORE, EventKind.MERGE)


class BulkEnqueue(Protocol):
    """The part of `QueueRepository` intake needs (see app/store/queue/repository.py)."""

    async def enqueue_each(
        self,
        connection: AsyncConnection,
        requests: Sequence[tuple[str, str, str]],
        *,
        priority: int = 5,
        source: JobSource | str,
    ) -> dict[tuple[str, str], int]: ...


@dataclass
class DeliverySummary:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    queued: int = 0
    ignored: int = 0
    processed: int = 0
    failed: int = 0
    job_ids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "queued": self.queued,
            "ignored": self.ignored,
            "processed": self.processed,
            "failed": self.failed,
        }


Target = tuple[EntityType, str]


class _Router:
    """Routes the new events of one delivery; holds the links it read and changed."""

    def __init__(self, connection: AsyncConnection, *, app_id: str | None) -> None:
        self.connection = connection
        self.app_id = app_id
        self.links: dict[str, Link] = {}
        self.aliases: dict[str, str] = {}
        self.statuses: list[EventStatus] = []
        self.targets: dict[int, Target] = {}  # row id -> the entity whose sync it waits for

    async def load(self, incoming: Sequence[IncomingEvent]) -> None:
        ids: set[str] = set()
        for event in incoming:
            ids.add(event.object_id)
            if event.kind is EventKind.MERGE:
                survivor, old = event.merge_ids()
                ids.update([survivor, *old])
        self.links, self.aliases = await webhook_events.company_links(self.connection, sorted(ids))
        # Merges can chain (a survivor merged again later): follow the rest of the way.
        unresolved = sorted({s for s in self.aliases.values() if s not in self.links})
        if unresolved:
            further = await sync_state.resolve_company_ids(self.connection, unresolved)
            self.aliases = {old: further.get(new, new) for old, new in self.aliases.items()}
            more = sorted(set(further.values()) - set(self.links))
            self.links.update(await sync_state.links_by_company(self.connection, more))

    def company(self, company_id: str) -> str:
        return self.aliases.get(company_id, company_id)

    def target(self, company_id: str) -> Target:
        link = self.links.get(company_id)
        if link is not None and link.warp_customer_id is not None:
            return EntityType.CUSTOMER, link.warp_customer_id
        return EntityType.COMPANY, company_id

    def ignore(self, row_id: int, reason: str) -> None:
        self.statuses.append(EventStatus(row_id, IGNORED, reason))

    async def route(self, row_id: int, event: IncomingEvent, *, honour_own_writes: bool) -> None:
        if event.problem is not None:
            # Stored (made storable) so nothing is lost, but not acted on: a person looks.
            log.warning(
                "webhook event %s for company %s not processed: %s",
                event.event_id,
                event.object_id,
                event.problem,
            )
            self.statuses.append(EventStatus(row_id, FAILED, event.problem))
            return
        kind = event.kind
        if kind is EventKind.UNSUPPORTED:
            self.ignore(row_id, f"subscription type {event.subscription_type} is not synced")
            return
        if (
            honour_own_writes
            and kind in (EventKind.CREATION, EventKind.PROPERTY_CHANGE)
            and is_own_write(event, self.app_id)
        ):
            self.ignore(row_id, OWN_WRITE_REASON)
            return
        if kind is EventKind.MERGE:
            await self.merge(row_id, event)
            return
        company = self.company(event.object_id)
        if kind is EventKind.DELETION:
            await self.delete(row_id, event, company)
            return
        if kind is EventKind.RESTORE:
            if not await self.restore(row_id, event, company):
                return
        elif (link := self.links.get(company)) is not None and link.state in _STOPPED:
            self.ignore(row_id, _STOPPED[link.state].format(company=company, link=link))
            return
        self.targets[row_id] = self.target(company)

    async def delete(self, row_id: int, event: IncomingEvent, company: str) -> None:
        if await webhook_events.later_lifecycle_event(
            self.connection, event.object_id, EventKind.RESTORE, event.occurred_at
        ):
            self.ignore(row_id, "superseded by a later restore")
            return
        link = self.links.get(company)
        if link is None:
            reason = f"company {company} has no link; nothing to stop"
        elif await sync_state.set_link_state(
            self.connection, company, "deleted", at=event.occurred_at
        ):
            self.links[company] = _with(link, state="deleted")
            reason = f"link of company {company} marked deleted; syncing it stopped"
        else:
            self.ignore(row_id, "superseded by a later restore already applied")
            return
        self.statuses.append(EventStatus(row_id, PROCESSED, reason))

    async def restore(self, row_id: int, event: IncomingEvent, company: str) -> bool:
        if await webhook_events.later_lifecycle_event(
            self.connection, event.object_id, EventKind.DELETION, event.occurred_at
        ):
            self.ignore(row_id, "superseded by a later deletion")
            return False
        link = self.links.get(company)
        if link is not None:
            # Stamped even on a live link: a 404 seen before this restore must not undo it.
            state = link.state
            if state == "deleted":
                state = "active" if link.warp_customer_id is not None else "unmatched"
            if not await sync_state.set_link_state(
                self.connection, company, state, at=event.occurred_at
            ):
                self.ignore(row_id, "superseded by a later deletion already applied")
                return False
            self.links[company] = _with(link, state=state)
        return True

    async def merge(self, row_id: int, event: IncomingEvent) -> None:
        survivor, merged_away = event.merge_ids()
        for old in merged_away:
            await sync_state.add_alias(self.connection, old, survivor, "merge")
            self.aliases[old] = survivor
        candidates = [survivor, *merged_away]
        held = [self.links[c] for c in candidates if c in self.links]
        keeper = next((link for link in held if link.warp_customer_id is not None), None)
        if keeper is not None and keeper.hubspot_company_id != survivor:
            # save_link moves the keeper to the survivor and drops a customer-less link the
            # survivor may hold (a customer-held one would have been chosen as keeper).
            await sync_state.save_link(
                self.connection,
                customer_id=keeper.warp_customer_id,
                company_id=survivor,
                ban=normalize_ban(keeper.warp_ban),  # one normalisation of bans
            )
            self.links.pop(keeper.hubspot_company_id or "", None)
            self.links[survivor] = keeper = _with(keeper, hubspot_company_id=survivor)
        for link in held:
            if (keeper is not None and link.id == keeper.id) or link.hubspot_company_id == survivor:
                continue
            old = link.hubspot_company_id or ""
            await sync_state.set_link_state(self.connection, old, "merged")
            self.links[old] = _with(link, state="merged")
        self.targets[row_id] = self.target(survivor)

    async def enqueue(self, queue: BulkEnqueue) -> None:
        """One enqueue statement for every target; then every routed event is `queued`."""
        if not self.targets:
            return
        requests = [
            (kind.value, key, _DIRECTIONS[kind].value) for kind, key in set(self.targets.values())
        ]
        job_ids = await queue.enqueue_each(self.connection, requests, source=JobSource.WEBHOOK)
        for row_id, (kind, key) in self.targets.items():
            self.statuses.append(EventStatus(row_id, QUEUED, None, job_ids[(kind.value, key)]))


def _with(link: Link, **changes: Any) -> Link:
    return dataclasses.replace(link, **changes)


async def _route_all(
    connection: AsyncConnection,
    rows: Sequence[tuple[int, IncomingEvent]],
    *,
    queue: BulkEnqueue,
    app_id: str | None,
    honour_own_writes: bool,
) -> list[EventStatus]:
    router = _Router(connection, app_id=app_id)
    routed = [
        event
        for _, event in rows
        if event.kind is not EventKind.UNSUPPORTED and event.problem is None
    ]
    if routed:
        await router.load(routed)
    # Oldest first, so a delivery holding a deletion and a restore ends in the newer state.
    for row_id, event in sorted(rows, key=lambda pair: (pair[1].occurred_at_ms, pair[0])):
        await router.route(row_id, event, honour_own_writes=honour_own_writes)
    await router.enqueue(queue)
    await webhook_events.set_statuses(connection, router.statuses)
    return router.statuses


async def accept_delivery(
    connection: AsyncConnection,
    incoming: Sequence[IncomingEvent],
    *,
    queue: BulkEnqueue,
    app_id: str | None,
) -> DeliverySummary:
    """Store a verified delivery and queue its work, on the caller's transaction."""
    [summary] = await accept_deliveries(connection, [incoming], queue=queue, app_id=app_id)
    return summary


async def accept_deliveries(
    connection: AsyncConnection,
    deliveries: Sequence[Sequence[IncomingEvent]],
    *,
    queue: BulkEnqueue,
    app_id: str | None,
) -> list[DeliverySummary]:
    """Store several verified deliveries and queue their work, on the caller's transaction,
    as if they were one delivery; a summary for each, in order (see app/sync/intake/writer.py).

    An event repeated across the group is stored once and counted for the first delivery that
    holds it; the later ones count it as a duplicate, as they would had it arrived earlier.
    """
    everything = [event for delivery in deliveries for event in delivery]
    stored = await webhook_events.store_events(connection, everything)
    summaries = [DeliverySummary(received=len(delivery)) for delivery in deliveries]
    owner: dict[int, DeliverySummary] = {}  # row id -> the summary that stored it
    rows: list[tuple[int, IncomingEvent]] = []
    for summary, delivery in zip(summaries, deliveries, strict=True):
        for event in delivery:
            row_id = stored.get(event.dedup_key)
            if row_id is None or row_id in owner:
                summary.duplicates += 1
                continue
            owner[row_id] = summary
            summary.stored += 1
            rows.append((row_id, event))
    statuses = await _route_all(
        connection, rows, queue=queue, app_id=app_id, honour_own_writes=True
    )
    for status in statuses:
        _count(owner[status.event_id], [status])
    return summaries


# Kinds whose routing only reads (the links): a group of only these (or of events with a
# problem, which are not routed) can be stored in one statement (`accept_deliveries_at_once`).
_READ_ONLY_ROUTING = (EventKind.CREATION, EventKind.PROPERTY_CHANGE, EventKind.UNSUPPORTED)


def can_accept_at_once(deliveries: Sequence[Sequence[IncomingEvent]]) -> bool:
    """Whether `accept_deliveries_at_once` may take these: no deletion, restore or merge,
    whose routing writes links and reads the events already stored."""
    return all(
        event.problem is not None or event.kind in _READ_ONLY_ROUTING
        for delivery in deliveries
        for event in delivery
    )


async def accept_deliveries_at_once(
    connection: AsyncConnection,
    deliveries: Sequence[Sequence[IncomingEvent]],
    *,
    app_id: str | None,
    source: JobSource = JobSource.WEBHOOK,
) -> list[DeliverySummary]:
    """`accept_deliveries` in two round trips and no transaction of its own, on PostgreSQL,
    for deliveries `can_accept_at_once` takes: read the links, route every event in memory
    (as `accept_deliveries` does), then ONE statement stores the new events with their
    final status and queues their jobs (`webhook_events.store_routed_events`; atomic on an
    autocommit connection). The summaries are those `accept_deliveries` gives."""
    unique: dict[str, IncomingEvent] = {}
    for delivery in deliveries:
        for event in delivery:
            unique.setdefault(event.dedup_key, event)
    ordered = [unique[key] for key in sorted(unique)]  # the lock order of the events
    router = _Router(connection, app_id=app_id)
    routed = [e for e in ordered if e.kind is not EventKind.UNSUPPORTED and e.problem is None]
    if routed:
        await router.load(routed)
    # Routing these kinds reads no state it changes, so the order does not matter here.
    for index, event in enumerate(ordered):
        await router.route(index, event, honour_own_writes=True)
    outcome = {status.event_id: status for status in router.statuses}
    items = []
    for index, event in enumerate(ordered):
        target = router.targets.get(index)
        if target is not None:
            kind, key = target
            direction = _DIRECTIONS[kind].value
            items.append(
                webhook_events.RoutedEvent(event, QUEUED, None, (kind.value, key, direction))
            )
        else:
            status = outcome[index]
            items.append(webhook_events.RoutedEvent(event, status.status, status.reason))
    status_of = {item.event.dedup_key: item.status for item in items}
    stored = await webhook_events.store_routed_events(
        connection, items, source=str(source), priority=5
    )
    summaries = [DeliverySummary(received=len(delivery)) for delivery in deliveries]
    counted: set[str] = set()
    for summary, delivery in zip(summaries, deliveries, strict=True):
        for event in delivery:
            key = event.dedup_key
            if key not in stored or key in counted:
                summary.duplicates += 1
                continue
            counted.add(key)
            summary.stored += 1
            row_id, job_id = stored[key]
            _count(summary, [EventStatus(row_id, status_of[key], None, job_id)])
    return summaries


async def reprocess_events(
    connection: AsyncConnection,
    *,
    queue: BulkEnqueue,
    app_id: str | None,
    event_ids: Sequence[int] | None = None,
    status: str | None = None,
    limit: int = REPROCESS_LIMIT,
) -> DeliverySummary:
    """Route stored events again (an operator's re-run): by id, or every event in `status`.

    The operator asked for it, so even an event ignored as our own write is queued again;
    unknown types stay ignored. Deletions and merges re-apply idempotently.
    """
    if event_ids is None and status is None:
        raise ValueError("give event_ids or a status")
    events = webhook_events.events
    query = select(events.c.id, events.c.raw, events.c.received_at).order_by(events.c.id)
    query = query.limit(limit)
    if event_ids is not None:
        query = query.where(events.c.id.in_(list(event_ids)))
    if status is not None:
        query = query.where(events.c.status == status)
    # Bounded by when each was first received, so a re-run never applies a future date.
    rows = [
        (row.id, bound_by_receipt([parse_event(0, row.raw)], _aware(row.received_at))[0])
        for row in await connection.execute(query)
    ]
    statuses = await _route_all(
        connection, rows, queue=queue, app_id=app_id, honour_own_writes=False
    )
    summary = DeliverySummary(received=len(rows))
    _count(summary, statuses)
    return summary


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _count(summary: DeliverySummary, statuses: Sequence[EventStatus]) -> None:
    for status in statuses:
        if status.status == QUEUED:
            summary.queued += 1
            if status.job_id is not None and status.job_id not in summary.job_ids:
                summary.job_ids.append(status.job_id)
        elif status.status == IGNORED:
            summary.ignored += 1
        elif status.status == PROCESSED:
            summary.processed += 1
        elif status.status == FAILED:
            summary.failed += 1
