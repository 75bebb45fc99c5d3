"""The stored HubSpot webhook events (`hubspot_webhook_events`) and the queries on them.

An event's life: `received` (stored, not yet routed) → `queued` (its work is the job in
`job_id`) → `processed` or `failed` when that job finishes; or straight to `ignored` (unknown
type, our own write, superseded) or `processed` (a deletion, which only marks the link). Every
function runs on the caller's connection, so storing, routing and queueing commit together.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    and_,
    any_,
    bindparam,
    cast,
    func,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.sql import any_of, any_param, fetch_postgres, postgres_sql
from app.store import widened
from app.store.models import SyncJob, Timestamp, WebhookEvent, table_of
from app.store.queue import SQL_SUPERSEDED
from app.store.queue.enqueue import pending_upsert_postgres
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
    ordered = [unique[key] for key in sorted(unique)]
    if connection.dialect.name == "postgresql":
        return await _store_events_postgres(connection, ordered, stamp)
    rows = [_row(event, stamp) for event in ordered]
    # executemany with RETURNING ("insertmanyvalues"): one round trip per 1,000 rows, and a
    # statement SQLAlchemy compiles once, unlike a multi-row .values() that compiles each time.
    result = await connection.execute(_insert_new(connection.dialect.name), rows)
    return {row.dedup_key: row.id for row in result}


# The intake's statements on PostgreSQL: one array per column, unnested by the server, sent as
# SQL text. A delivery of 100 events is then a dozen parameters rather than 1,300 that
# SQLAlchemy would process one by one, and the statement is prepared once per connection
# (bench/intake_floor.py measures the difference). Same columns and clipping as `_row`.
_INSERT_EVENTS_POSTGRES = """
INSERT INTO hubspot_webhook_events (dedup_key, event_id, subscription_type, object_id,
    property_name, property_value, change_source, source_id, occurred_at, attempt_number,
    raw, status, received_at)
SELECT k, e, st, o, pn, pv, cs, si, oa, an, r::jsonb, 'received', $12::timestamptz
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::timestamptz[], $10::int[], $11::text[])
    WITH ORDINALITY AS t(k, e, st, o, pn, pv, cs, si, oa, an, r, n)
ORDER BY n
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id, dedup_key
"""


async def _store_events_postgres(
    connection: AsyncConnection, ordered: Sequence[IncomingEvent], stamp: datetime
) -> dict[str, int]:
    columns: list[list[Any]] = [[] for _ in range(11)]
    for event in ordered:
        row = _row(event, stamp)
        for column, name in zip(columns, _EVENT_COLUMNS, strict=True):
            column.append(row[name])
    columns[10] = [json.dumps(raw) for raw in columns[10]]
    result: Any = await connection.exec_driver_sql(_INSERT_EVENTS_POSTGRES, (*columns, stamp))
    return {row[1]: row[0] for row in result}  # dedup_key: id


_EVENT_COLUMNS = (
    "dedup_key",
    "event_id",
    "subscription_type",
    "object_id",
    "property_name",
    "property_value",
    "change_source",
    "source_id",
    "occurred_at",
    "attempt_number",
    "raw",
)


_INSERTS: dict[str, Any] = {}


def _insert_new(dialect: str) -> Any:
    if dialect not in _INSERTS:
        insert = postgresql.insert(events) if dialect == "postgresql" else sqlite.insert(events)
        _INSERTS[dialect] = insert.on_conflict_do_nothing(index_elements=["dedup_key"]).returning(
            events.c.id, events.c.dedup_key
        )
    return _INSERTS[dialect]


@dataclass(frozen=True)
class RoutedEvent:
    """A new event with what becomes of it, decided before it is stored: its status and
    reason, and for a `queued` one the entity whose job it waits for."""

    event: IncomingEvent
    status: str
    reason: str | None = None
    target: tuple[str, str, str] | None = None  # (entity_type, key, direction)


# The webhook intake's write on PostgreSQL, in ONE statement, so in one round trip and
# without a transaction of its own: the events not already stored are inserted with their
# final status, and the jobs of those queued are enqueued (the queue's own upsert,
# app/store/queue/enqueue.py), each event row holding its job's id. An event stored by a
# concurrent statement meanwhile is skipped by ON CONFLICT; its job is merged into the
# pending job the other statement queued (or queues one more sync of that entity): nothing
# is lost or stored twice.
_INCOMING = """
incoming AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::int[], $11::text[],
        $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])
        WITH ORDINALITY AS i(k, e, st, o, pn, pv, cs, si, oa, an, r, status, reason, tt, tk,
            td, n)
    -- One probe of the unique index per event: a scalar subquery with LIMIT is run per row
    -- as written, where NOT EXISTS or NOT IN may be planned as a scan of the whole table.
    WHERE (SELECT 1 FROM hubspot_webhook_events AS w WHERE w.dedup_key = i.k LIMIT 1) IS NULL
)"""
_QUEUE_ROUTED = pending_upsert_postgres(
    # by type, then key (as Python sorts them): the lock order of every enqueue
    "(SELECT DISTINCT tt AS t, tk AS k, td AS d, "
    'dense_rank() OVER (ORDER BY tt COLLATE "C", tk COLLATE "C") AS n '
    "FROM incoming WHERE tt IS NOT NULL) AS r",
    source="$17::text",
    priority="$18::smallint",
    payload="NULL::jsonb",
)
_STORE_ROUTED_POSTGRES = f"""
WITH {_INCOMING.strip()},
jobs AS ({_QUEUE_ROUTED.strip()}),
-- Each event's job found by key in one object, built once (an uncorrelated subquery is an
-- InitPlan): a join, or a join to this object, is planned by a prepared statement's generic
-- estimates (1 row a side) as a nested loop: 4 M steps for a group of 2,000 events.
job_ids AS (SELECT jsonb_object_agg(entity_type || ' ' || entity_key, id) AS by_target FROM jobs)
INSERT INTO hubspot_webhook_events (dedup_key, event_id, subscription_type, object_id,
    property_name, property_value, change_source, source_id, occurred_at, attempt_number,
    raw, status, status_reason, job_id, received_at, processed_at)
SELECT i.k, i.e, i.st, i.o, i.pn, i.pv, i.cs, i.si, i.oa, i.an, i.r::jsonb, i.status, i.reason,
    ((SELECT by_target FROM job_ids) ->> (i.tt || ' ' || i.tk))::bigint, $19::timestamptz,
    CASE WHEN i.status = '{QUEUED}' THEN NULL ELSE $19 END
FROM incoming AS i
ORDER BY i.n
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id, dedup_key, job_id
"""


async def store_routed_events(
    connection: AsyncConnection, routed: Sequence[RoutedEvent], *, source: str, priority: int
) -> dict[str, tuple[int, int | None]]:
    """PostgreSQL only: store the new events of `routed` (distinct, in dedup-key order) with
    their status, and queue their jobs, in one statement (above); {dedup_key: (row id, job
    id)} of those stored. Run it on an autocommit connection: it is atomic on its own."""
    if not routed:
        return {}
    stamp = _now()
    columns: list[list[Any]] = [[] for _ in range(16)]
    for item in routed:
        row = _row(item.event, stamp)
        target = item.target or (None, None, None)
        values = (
            *(row[name] for name in _EVENT_COLUMNS[:10]),
            json.dumps(row["raw"]),
            item.status,
            _clip(item.reason),
            *target,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    result = await fetch_postgres(
        connection, _STORE_ROUTED_POSTGRES, *columns, source, priority, stamp
    )
    return {row[1]: (row[0], row[2]) for row in result}  # dedup_key: (id, job_id)


async def company_links(
    connection: AsyncConnection, company_ids: Sequence[str]
) -> tuple[dict[str, Link], dict[str, str]]:
    """The links of these companies, and for ids merged away their survivor (one alias hop)
    with its link — in one round trip, since intake asks this for every delivery."""
    if not company_ids:
        return {}, {}
    rows: Any  # (asked, survivor, then the link's columns) from SQL text or the query below
    if connection.dialect.name == "postgresql":
        rows = await fetch_postgres(connection, _COMPANY_LINKS_POSTGRES, list(company_ids))
    else:
        rows = await connection.execute(_company_links_query(), {"ids": list(company_ids)})
    found: dict[str, Link] = {}
    survivors: dict[str, str] = {}
    for row in rows:
        if row[1] is not None:
            survivors[row[0]] = row[1]
        if row[2] is not None:
            found[row[4]] = Link(row[2], row[3], row[4], row[5], row[6])
    return found, survivors


@functools.cache
def _company_links_query() -> Any:
    ids: Any = bindparam("ids", expanding=True)
    direct = select(
        links.c.hubspot_company_id.label("asked"), null().label("survivor"), *_LINK_COLUMNS
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
    return union_all(direct, via_alias)


_COMPANY_LINKS_POSTGRES = """
SELECT l.hubspot_company_id, NULL, l.id, l.warp_customer_id, l.hubspot_company_id,
    l.warp_ban, l.state
FROM hubspot_entity_links AS l WHERE l.hubspot_company_id = ANY($1::text[])
UNION ALL
SELECT a.old_company_id, a.company_id, l.id, l.warp_customer_id, l.hubspot_company_id,
    l.warp_ban, l.state
FROM hubspot_company_aliases AS a
LEFT JOIN hubspot_entity_links AS l ON l.hubspot_company_id = a.company_id
WHERE a.old_company_id = ANY($1::text[])
"""


async def set_statuses(connection: AsyncConnection, outcomes: Sequence[EventStatus]) -> None:
    """Record what became of events, in one statement (one executemany on SQLite)."""
    if not outcomes:
        return
    stamp = _now()
    if connection.dialect.name == "postgresql":
        await connection.exec_driver_sql(
            _SET_STATUSES_POSTGRES,
            (
                [outcome.event_id for outcome in outcomes],
                [outcome.status for outcome in outcomes],
                [_clip(outcome.reason) for outcome in outcomes],
                [outcome.job_id for outcome in outcomes],
                stamp,
            ),
        )
        return
    await connection.execute(
        _set_statuses_statement(),
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


@functools.cache
def _set_statuses_statement() -> Any:
    return (
        update(events)
        .where(events.c.id == bindparam("row_id"))
        .values(
            status=bindparam("new_status"),
            status_reason=bindparam("reason"),
            job_id=bindparam("job"),
            processed_at=bindparam("done_at"),
        )
    )


_SET_STATUSES_POSTGRES = f"""
UPDATE hubspot_webhook_events AS e
SET status = s.status, status_reason = s.reason, job_id = s.job,
    processed_at = CASE WHEN s.status = '{QUEUED}' THEN NULL ELSE $5::timestamptz END
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS s(row_id, status, reason, job)
WHERE e.id = s.row_id
"""


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
) -> None:
    """Close the events whose work those jobs did: DONE → processed, FAILED → failed with the
    job's error; RETRY leaves them queued. (In a sync batch's records: the DONE jobs' events
    are closed by a write that can be gathered with the others, `app.sql.gathered_writes`.)

    Events of an earlier job of the same entity that the queue folded into this one (a retry
    superseded by a newer pending job) are closed with it: their work was done here.
    """
    stamp = _now()
    done = [o.job_id for o in outcomes if o.status is OutcomeStatus.DONE]
    if done and connection.dialect.name == "postgresql":  # every batch: through asyncpg
        await _PROCESSED_POSTGRES.write(connection, ids=done, at=stamp)
    elif done:
        await connection.execute(
            update(events)
            .where(_queued_of_jobs(connection, done))
            .values(status=PROCESSED, status_reason=None, processed_at=stamp)
        )
    for outcome in outcomes:
        if outcome.status is OutcomeStatus.FAILED:
            await connection.execute(
                update(events)
                .where(_queued_of_jobs(connection, [outcome.job_id]))
                .values(
                    status=FAILED,
                    status_reason=_clip(outcome.error or "the sync job failed"),
                    processed_at=stamp,
                )
            )


def _queued_of_jobs(connection: AsyncConnection, job_ids: Sequence[int]) -> ColumnElement[bool]:
    return _queued_of_jobs_where(
        lambda column: any_of(connection, column, job_ids),
        postgres=connection.dialect.name == "postgresql",
    )


def _queued_of_jobs_where(
    among: Callable[[Any], ColumnElement[bool]], *, postgres: bool
) -> ColumnElement[bool]:
    """The queued events of these jobs (`among(column)`), and of the earlier jobs folded into
    them, found by job id whatever the planner's statistics say.

    As "the jobs' events OR a folded job's", no index served the OR: every batch read every
    queued event of the deployment. The ids are one list, the jobs' own and the folded ones'
    (a folded job found through the partial index of superseded jobs,
    `ix_hubspot_sync_queue_superseded`, hence the kind as a literal). On PostgreSQL the list is
    an array (`= ANY`), so the events can only be probed by `job_id`, never joined to it, and
    the state is a filter no index serves: a burst of webhooks outruns autovacuum's statistics,
    and on statistics that said few events were queued PostgreSQL scanned every queued one per
    batch (or worse: as `IN (...)`, a nested loop over all of them, 148 s for one batch at
    100,000 queued; bench/README.md, "Eleventh pass")."""
    earlier, current = queue.alias("earlier"), queue.alias("current")
    own = select(current.c.id).where(among(current.c.id))
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
            among(current.c.id),
            earlier.c.last_error_kind == SQL_SUPERSEDED,
            earlier.c.id < current.c.id,
        )
    )
    jobs = union_all(own, folded)
    if not postgres:
        return and_(events.c.job_id.in_(jobs), events.c.status == QUEUED)
    listed = jobs.subquery("jobs")
    # An array (one value, computed once), not `= ANY (SELECT ...)`, which compares row by row.
    array = cast(select(func.array_agg(listed.c.id)).scalar_subquery(), ARRAY(BigInteger))
    return and_(
        events.c.job_id == any_(array),
        func.coalesce(events.c.status, "") == QUEUED,  # not the state's index: see above
    )


_PROCESSED_POSTGRES = postgres_sql(
    update(events)
    .where(_queued_of_jobs_where(lambda column: any_param(column, "ids"), postgres=True))
    .values(status=PROCESSED, status_reason=None, processed_at=bindparam("at", type_=Timestamp))
)


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
