"""The stored HubSpot webhook events (`hubspot_webhook_events`) and the queries on them.

An event's life: `received` (stored, not yet routed) → `queued` (its work is the job in
`job_id`) → `processed` or `failed` when that job finishes; or straight to `ignored` (unknown
type, our own write, superseded) or `processed` (a deletion, which only marks the link). Every
function runs on the caller's connection, so storing, routing and queueing commit together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    func,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store import widened
from app.store.models import SyncJob, WebhookEvent, table_of
from app.store.queue import SUPERSEDED
from app.store.sync_state import aliases, as_utc, links
from app.sync.core.events import OWN_WRITE_REASON, EventKind, IncomingEvent
from app.sync.core.jobs import JobOutcome, OutcomeStatus
from app.sync.core.records import Link

events = table_of(WebhookEvent)
queue = table_of(SyncJob)

RECEIVED, QUEUED, PROCESSED, IGNORED, FAILED = (
    "received",
    "queued",
    "processed",
    "ignored",
    "failed",
)
STATUSES = (RECEIVED, QUEUED, PROCESSED, IGNORED, FAILED)
MAX_REASON_CHARS = 2000
_LINK_COLUMNS = (
    links.c.id,
    links.c.warp_customer_id,
    links.c.hubspot_company_id,
    widened.column(links, "warp_ban"),
    links.c.state,
)


@dataclass(frozen=True)
class EventStatus:
    """What became of one stored event."""

    event_id: int  # our row id, not HubSpot's eventId
    status: str
    reason: str | None = None
    job_id: int | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _row(event: IncomingEvent, received_at: datetime) -> dict[str, Any]:
    return {
        "dedup_key": event.dedup_key,
        "event_id": event.event_id,
        "subscription_type": event.subscription_type[:64],
        "object_id": event.object_id,
        "property_name": event.property_name[:128] if event.property_name else None,
        "property_value": event.property_value,
        "change_source": event.change_source[:64] if event.change_source else None,
        "source_id": event.source_id[:128] if event.source_id else None,
        "occurred_at": event.storable_occurred_at,
        "attempt_number": event.storable_attempt_number,
        "raw": event.raw,
        "status": RECEIVED,
        "received_at": received_at,
    }


async def store_events(
    connection: AsyncConnection, incoming: Sequence[IncomingEvent]
) -> dict[str, int]:
    """Insert every event not stored before, in one statement; {dedup_key: row id} of the new.

    Duplicates (same content, already stored or repeated in this delivery) are skipped by the
    unique dedup key (`ON CONFLICT DO NOTHING`), so concurrent deliveries of one event store it
    once. Rows go in dedup-key order, so two overlapping deliveries lock them in the same order.
    """
    unique = {event.dedup_key: event for event in incoming}
    if not unique:
        return {}
    stamp = _now()
    rows = [_row(unique[key], stamp) for key in sorted(unique)]
    # executemany with RETURNING ("insertmanyvalues"): one round trip per 1,000 rows, and a
    # statement SQLAlchemy compiles once, unlike a multi-row .values() that compiles each time.
    result = await connection.execute(_insert_new(connection.dialect.name), rows)
    return {row.dedup_key: row.id for row in result}


_INSERTS: dict[str, Any] = {}


def _insert_new(dialect: str) -> Any:
    if dialect not in _INSERTS:
        insert = postgresql.insert(events) if dialect == "postgresql" else sqlite.insert(events)
        _INSERTS[dialect] = insert.on_conflict_do_nothing(index_elements=["dedup_key"]).returning(
            events.c.id, events.c.dedup_key
        )
    return _INSERTS[dialect]


async def company_links(
    connection: AsyncConnection, company_ids: Sequence[str]
) -> tuple[dict[str, Link], dict[str, str]]:
    """The links of these companies, and for ids merged away their survivor (one alias hop)
    with its link — in one round trip, since intake asks this for every delivery."""
    if not company_ids:
        return {}, {}
    ids = list(company_ids)
    direct = select(
        links.c.hubspot_company_id.label("asked"),
        null().label("survivor"),
        *_LINK_COLUMNS,
    ).where(links.c.hubspot_company_id.in_(ids))
    via_alias = (
        select(
            aliases.c.old_company_id.label("asked"),
            aliases.c.company_id.label("survivor"),
            *_LINK_COLUMNS,
        )
        .select_from(aliases.outerjoin(links, links.c.hubspot_company_id == aliases.c.company_id))
        .where(aliases.c.old_company_id.in_(ids))
    )
    found: dict[str, Link] = {}
    survivors: dict[str, str] = {}
    for row in await connection.execute(union_all(direct, via_alias)):
        if row.survivor is not None:
            survivors[row.asked] = row.survivor
        if row.id is not None:
            found[row.hubspot_company_id] = Link(
                row.id, row.warp_customer_id, row.hubspot_company_id, row.warp_ban, row.state
            )
    return found, survivors


async def set_statuses(connection: AsyncConnection, outcomes: Sequence[EventStatus]) -> None:
    """Record what became of events, in one executemany."""
    if not outcomes:
        return
    stamp = _now()
    statement = (
        update(events)
        .where(events.c.id == bindparam("row_id"))
        .values(
            status=bindparam("new_status"),
            status_reason=bindparam("reason"),
            job_id=bindparam("job"),
            processed_at=bindparam("done_at"),
        )
    )
    await connection.execute(
        statement,
        [
            {
                "row_id": outcome.event_id,
                "new_status": outcome.status,
                "reason": _clip(outcome.reason),
                "job": outcome.job_id,
                "done_at": None if outcome.status == QUEUED else stamp,
            }
            for outcome in outcomes
        ],
    )


async def later_lifecycle_event(
    connection: AsyncConnection, company_id: str, kind: EventKind, after: datetime
) -> bool:
    """Whether a `kind` event (deletion or restore) for the company, newer than `after`, is
    already stored: then an older opposite event arriving late must not undo it."""
    found = await connection.execute(
        select(func.count())
        .select_from(events)
        .where(
            events.c.object_id == company_id,
            events.c.subscription_type == f"company.{kind.value}",
            events.c.occurred_at > after,
        )
    )
    return bool(found.scalar_one())


async def finish_events_for_jobs(
    connection: AsyncConnection, outcomes: Sequence[JobOutcome]
) -> int:
    """Close the events whose work those jobs did: DONE → processed, FAILED → failed with the
    job's error; RETRY leaves them queued. Returns the number of events changed.

    Events of an earlier job of the same entity that the queue folded into this one (a retry
    superseded by a newer pending job) are closed with it: their work was done here.
    """
    stamp = _now()
    changed = 0
    done = [o.job_id for o in outcomes if o.status is OutcomeStatus.DONE]
    if done:
        result = await connection.execute(
            update(events)
            .where(_of_jobs(done), events.c.status == QUEUED)
            .values(status=PROCESSED, status_reason=None, processed_at=stamp)
        )
        changed += result.rowcount
    for outcome in outcomes:
        if outcome.status is OutcomeStatus.FAILED:
            result = await connection.execute(
                update(events)
                .where(_of_jobs([outcome.job_id]), events.c.status == QUEUED)
                .values(
                    status=FAILED,
                    status_reason=_clip(outcome.error or "the sync job failed"),
                    processed_at=stamp,
                )
            )
            changed += result.rowcount
    return changed


def _of_jobs(job_ids: Sequence[int]) -> ColumnElement[bool]:
    earlier, current = queue.alias("earlier"), queue.alias("current")
    folded = (
        select(earlier.c.id)
        .join(
            current,
            and_(
                earlier.c.entity_type == current.c.entity_type,
                earlier.c.entity_key == current.c.entity_key,
            ),
        )
        .where(
            current.c.id.in_(list(job_ids)),
            earlier.c.last_error_kind == SUPERSEDED,
            earlier.c.id < current.c.id,
        )
    )
    return or_(events.c.job_id.in_(list(job_ids)), events.c.job_id.in_(folded))


@dataclass(frozen=True)
class StoredEvent:
    id: int
    hubspot_event_id: int | None
    subscription_type: str
    object_id: str | None
    property_name: str | None
    property_value: str | None
    change_source: str | None
    source_id: str | None
    occurred_at: datetime | None
    attempt_number: int | None
    status: str
    status_reason: str | None
    job_id: int | None
    received_at: datetime
    processed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            # SQLite hands timestamps back naive; they are UTC, and RFC 3339 wants the offset.
            moment = as_utc(value)
            return moment.isoformat() if moment else None

        return {
            "id": self.id,
            "event_id": self.hubspot_event_id,
            "subscription_type": self.subscription_type,
            "object_id": self.object_id,
            "property_name": self.property_name,
            "property_value": self.property_value,
            "change_source": self.change_source,
            "source_id": self.source_id,
            "occurred_at": iso(self.occurred_at),
            "attempt_number": self.attempt_number,
            "status": self.status,
            "status_reason": self.status_reason,
            "job_id": self.job_id,
            "received_at": iso(self.received_at),
            "processed_at": iso(self.processed_at),
        }


_LISTED = (
    events.c.id,
    events.c.event_id.label("hubspot_event_id"),
    events.c.subscription_type,
    events.c.object_id,
    events.c.property_name,
    events.c.property_value,
    events.c.change_source,
    events.c.source_id,
    events.c.occurred_at,
    events.c.attempt_number,
    events.c.status,
    events.c.status_reason,
    events.c.job_id,
    events.c.received_at,
    events.c.processed_at,
)


async def list_events(
    connection: AsyncConnection,
    *,
    status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
    ids: Sequence[int] | None = None,
) -> list[StoredEvent]:
    """Newest first; page with `before_id` (the last id of the previous page)."""
    query = select(*_LISTED).order_by(events.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(events.c.status == status)
    if before_id is not None:
        query = query.where(events.c.id < before_id)
    if ids is not None:
        query = query.where(events.c.id.in_(list(ids)))
    rows = await connection.execute(query)
    return [StoredEvent(**row._mapping) for row in rows]


def _clip(reason: str | None) -> str | None:
    return None if reason is None else reason[:MAX_REASON_CHARS]


async def crm_edits_since(
    connection: AsyncConnection, since: Mapping[str, datetime], properties: Sequence[str]
) -> dict[str, dict[str, tuple[str | None, datetime]]]:
    """Per company, per property: the newest stored change after `since[company]` that was
    not hubsync's own write — (value, when)."""
    if not since or not properties:
        return {}
    rows = await connection.execute(
        select(events.c.object_id, events.c.property_name, events.c.property_value,
               events.c.occurred_at)
        .where(
            events.c.subscription_type == "company.propertyChange",
            events.c.object_id.in_(list(since)),
            events.c.property_name.in_(list(properties)),
            events.c.occurred_at > min(since.values()),
            or_(events.c.status != IGNORED, events.c.status_reason.is_(None),
                events.c.status_reason != OWN_WRITE_REASON),
        )
        .order_by(events.c.occurred_at, events.c.id)
    )  # fmt: skip
    newest: dict[str, dict[str, tuple[str | None, datetime]]] = {}
    for row in rows:
        at = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=UTC)
        if at > since[row.object_id]:
            newest.setdefault(row.object_id, {})[row.property_name] = (row.property_value, at)
    return newest


async def property_change_times(
    connection: AsyncConnection, company_ids: Sequence[str], properties: Sequence[str]
) -> dict[tuple[str, str], list[tuple[str | None, datetime]]]:
    """Per (company, property): every stored propertyChange as (value, occurredAt), newest
    first — HubSpot's own word on when each value was set."""
    if not company_ids or not properties:
        return {}
    rows = await connection.execute(
        select(events.c.object_id, events.c.property_name, events.c.property_value,
               events.c.occurred_at)
        .where(
            events.c.subscription_type == "company.propertyChange",
            events.c.object_id.in_(list(company_ids)),
            events.c.property_name.in_(list(properties)),
            events.c.occurred_at.is_not(None),
        )
        .order_by(events.c.occurred_at.desc(), events.c.id.desc())
    )  # fmt: skip
    found: dict[tuple[str, str], list[tuple[str | None, datetime]]] = {}
    for row in rows:
        at = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=UTC)
        found.setdefault((row.object_id, row.property_name), []).append((row.property_value, at))
    return found
