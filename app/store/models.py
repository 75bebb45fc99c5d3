"""hubsync's own tables, declared once; Alembic migrations build exactly this schema.

A test compares these declarations with the schema the migrations produce, so a column added
here without a migration (or the reverse) fails the suite. The WARP customers table is not
here: it belongs to WARP (see `app/warp/schema.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Names for constraints so migrations and the drift check agree on every dialect.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT keys on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Python None is SQL NULL (not JSON 'null'), so COALESCE and IS NULL mean what they say.
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Timestamp = DateTime(timezone=True)
NOW = text("CURRENT_TIMESTAMP")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """A model's Core table, for queries written in SQLAlchemy Core. Declarative types
    `__table__` as a `FromClause`; every model here is mapped to one plain Table."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a Table")
    return table


class SyncJob(Base):
    """One unit of sync work for one entity, from any source.

    At most one *pending* and at most one *running* job per entity (partial unique indexes), so
    a new request while a job runs queues exactly one follow-up and two workers can never hold
    the same entity.
    """

    __tablename__ = "hubspot_sync_queue"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # 'customer' (keyed by WARP customer id) or 'company' (keyed by HubSpot company id)
    entity_type: Mapped[str] = mapped_column(String(16))
    entity_key: Mapped[str] = mapped_column(String(64))
    # which way the work goes: 'to_hubspot', 'to_warp', 'both'
    direction: Mapped[str] = mapped_column(String(16), server_default="to_hubspot")
    # who asked: 'api', 'webhook', 'reconciliation', 'operator'
    source: Mapped[str] = mapped_column(String(16), server_default="api")
    # pending -> running -> done | failed (failed may be re-queued to pending)
    state: Mapped[str] = mapped_column(String(16), server_default="pending")
    priority: Mapped[int] = mapped_column(SmallInteger, server_default="5")  # 1 = most urgent
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    run_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)
    locked_by: Mapped[str | None] = mapped_column(String(128))
    # The fencing token: one more on every claim. A holder states it on every write, so a
    # holder whose lease was lost (and whose job was claimed again) is refused.
    claim: Mapped[int | None] = mapped_column(BigInteger, server_default="0")
    lease_until: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_kind: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index(
            "uq_hubspot_sync_queue_pending_entity",
            "entity_type",
            "entity_key",
            unique=True,
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index(
            "uq_hubspot_sync_queue_running_entity",
            "entity_type",
            "entity_key",
            unique=True,
            postgresql_where=text("state = 'running'"),
            sqlite_where=text("state = 'running'"),
        ),
        # The claim's and the lease rescue's: only the jobs they look for (migration 0023),
        # so a claim adds one entry (the lease) and a completion none.
        Index(
            "ix_hubspot_sync_queue_due",
            "priority",
            "run_at",
            "id",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index(
            "ix_hubspot_sync_queue_leased",
            "lease_until",
            postgresql_where=text("state = 'running'"),
            sqlite_where=text("state = 'running'"),
        ),
        # The operator's console: an entity's jobs, the failed list (keyset on id), and the
        # dashboard's jobs finished per minute.
        Index("ix_hubspot_sync_queue_entity", "entity_type", "entity_key", "id"),
        Index("ix_hubspot_sync_queue_state_id", "state", "id"),
        Index("ix_hubspot_sync_queue_finished", "finished_at"),
        # Read alone (index-only) at a million jobs: the dashboard's done in 24 h and per
        # minute; /metrics' jobs per state and direction; the failed jobs' error kinds.
        Index("ix_hubspot_sync_queue_state_finished", "state", "finished_at"),
        Index(
            "ix_hubspot_sync_queue_state_direction_kind", "state", "direction", "last_error_kind"
        ),
        # The earlier jobs a batch's jobs absorbed, whose webhook events close with them
        # (app/store/webhook_events.py): only those, not each entity's whole history.
        Index(
            "ix_hubspot_sync_queue_superseded",
            "entity_type",
            "entity_key",
            "id",
            postgresql_where=text("last_error_kind = 'superseded'"),
            sqlite_where=text("last_error_kind = 'superseded'"),
        ),
    )


class IdempotencyKey(Base):
    """The answer given to a POST carrying an Idempotency-Key, replayed for the same request."""

    __tablename__ = "hubspot_idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    response: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class SyncLog(Base):
    """Audit trail: every sync attempt, the fields it changed (old -> new) and its outcome."""

    __tablename__ = "hubspot_sync_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    warp_customer_id: Mapped[str | None] = mapped_column(String(64))
    hubspot_company_id: Mapped[str | None] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(16))
    # 'created', 'updated', 'unchanged', 'conflict', 'failed', 'skipped'
    outcome: Mapped[str] = mapped_column(String(16))
    # [{"field", "property", "target": "hubspot"|"warp", "old", "new", "reason"}]
    changes: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW, index=True)

    # A customer's history, newest first, without sorting all of its rows (and every other
    # lookup by customer: migration 0024 dropped the index on the customer alone).
    __table_args__ = (Index("ix_hubspot_sync_log_customer_id", "warp_customer_id", "id"),)


class FieldState(Base):
    """Per customer and field: both sides' values, the merge base, and when each side changed.

    Values are kept in the canonical normalized form, so comparisons never flap on HubSpot's
    string typing.
    """

    __tablename__ = "hubspot_field_state"

    warp_customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    field: Mapped[str] = mapped_column(String(128), primary_key=True)
    # The HubSpot property this state (and its merge base) belongs to: the base is the pair's,
    # so a rule pointed at another property starts with none.
    hubspot_property: Mapped[str | None] = mapped_column(String(128))
    warp_value: Mapped[str | None] = mapped_column(Text)
    hubspot_value: Mapped[str | None] = mapped_column(Text)
    base_value: Mapped[str | None] = mapped_column(Text)
    warp_changed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    hubspot_changed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    synced_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # When hubsync last wrote this field to HubSpot: the time of the read that write was
    # decided on. A CRM edit after it and before the write was overwritten by it, however
    # late its webhook comes (app/sync/engine/crm_edits.py).
    hubspot_write_read_at: Mapped[datetime | None] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class SyncConfigRule(Base):
    """One field rule; the defaults of MISSION.md are loaded by the first migration."""

    __tablename__ = "hubspot_sync_config"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    warp_field: Mapped[str] = mapped_column(String(128), unique=True)
    hubspot_property: Mapped[str] = mapped_column(String(128), unique=True)
    value_type: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(32))
    authority: Mapped[str] = mapped_column(String(32))
    transform: Mapped[str | None] = mapped_column(String(32))
    value_map: Mapped[dict[str, str] | None] = mapped_column(Json)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)
    updated_by: Mapped[str | None] = mapped_column(String(128))


class SyncConfigChange(Base):
    """Every change to the field rules, with the whole rule set before and after."""

    __tablename__ = "hubspot_sync_config_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    changed_by: Mapped[str | None] = mapped_column(String(128))
    before: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    after: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class SyncScope(Base):
    """The sync scope (app/sync/core/scope.py): conditions on WARP columns a customer must
    meet to be synced at all. One row (id 1); no row is "everyone"."""

    __tablename__ = "hubsync_sync_scope"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # [{"column", "op": "in"|"not_in", "values": [...]}]
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)
    updated_by: Mapped[str | None] = mapped_column(String(128))


class ScopeExit(Base):
    """A customer a sync skipped as out of scope: when it comes back, its next sync reads
    HubSpot first, so CRM edits made meanwhile are decided from the merge base."""

    __tablename__ = "hubsync_scope_exits"

    warp_customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    left_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class WebhookEvent(Base):
    """A HubSpot webhook event as received (raw), and what became of it."""

    __tablename__ = "hubspot_webhook_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # HubSpot's eventId is not guaranteed unique: duplicates are found by content instead.
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    event_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    subscription_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64), index=True)
    property_name: Mapped[str | None] = mapped_column(String(128))
    property_value: Mapped[str | None] = mapped_column(Text)
    change_source: Mapped[str | None] = mapped_column(String(64))
    source_id: Mapped[str | None] = mapped_column(String(128))
    occurred_at: Mapped[datetime | None] = mapped_column(Timestamp)
    attempt_number: Mapped[int | None] = mapped_column(Integer)
    raw: Mapped[dict[str, Any]] = mapped_column(Json)
    # received -> queued -> processed | failed; or received -> ignored | processed
    status: Mapped[str] = mapped_column(String(16), server_default="received")
    status_reason: Mapped[str | None] = mapped_column(Text)
    # the hubspot_sync_queue job doing this event's work (status 'queued' until it finishes)
    job_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    received_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)
    processed_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index("ix_hubspot_webhook_events_status", "status", "received_at"),
        # The console's event lists: one status, newest first, paged by id.
        Index("ix_hubspot_webhook_events_status_id", "status", "id"),
    )


class ReconciliationRun(Base):
    """One reconciliation: when, mode, counts and report. `fire_key` makes each scheduled
    fire time run exactly once across replicas; the partial unique index on `status` makes
    at most one run *running* at a time. `phase` with `hubspot_after` (HubSpot's paging
    cursor), `hubspot_scan` (the search from the top) and `warp_after` (WARP's keyset
    position) is the checkpoint a takeover resumes from; `lease_until` says when a silent
    owner counts as dead."""

    __tablename__ = "hubspot_reconciliation_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fire_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    mode: Mapped[str] = mapped_column(String(16))  # 'dry_run' or 'fix'
    trigger: Mapped[str] = mapped_column(String(16))  # 'schedule', 'api', 'cli', 'operator'
    requested_by: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), server_default="running")
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(Timestamp)
    heartbeat_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # 'hubspot' (listing companies) -> 'warp' (customers HubSpot lacks) -> 'done'
    phase: Mapped[str] = mapped_column(String(16), server_default="hubspot")
    hubspot_after: Mapped[str | None] = mapped_column(String(256))
    # The search from the highest id down, and where the two streams stand against each
    # other (app/sync/reconcile/scan.py).
    hubspot_scan: Mapped[dict[str, Any] | None] = mapped_column(Json)
    warp_after: Mapped[str | None] = mapped_column(String(64))
    hubspot_calls: Mapped[int] = mapped_column(Integer, server_default="0")
    jobs_created: Mapped[int] = mapped_column(Integer, server_default="0")
    resumed: Mapped[int] = mapped_column(Integer, server_default="0")  # takeovers so far
    # Pages read so far on each side (None: a run from before they were recorded).
    hubspot_pages: Mapped[int | None] = mapped_column(Integer)
    warp_pages: Mapped[int | None] = mapped_column(Integer)
    counts: Mapped[dict[str, int] | None] = mapped_column(Json)
    report: Mapped[dict[str, Any] | None] = mapped_column(Json)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index(
            "uq_hubspot_reconciliation_runs_running",
            "status",
            unique=True,
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        Index("ix_hubspot_reconciliation_runs_started_at", "started_at"),
    )


class ReconciliationItem(Base):
    """One finding of a run: a pair (or a lone side) in one category, with the per-field
    values and decisions for drift, and the queue job `fix` made for it."""

    __tablename__ = "hubspot_reconciliation_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(BigId)
    category: Mapped[str] = mapped_column(String(24))
    # Each value in its `_text` column, and in the varchar(64) one too when it fits: the
    # previous release reads those (app/store/widened.py; a later release drops them).
    warp_customer_id: Mapped[str | None] = mapped_column(String(64))
    hubspot_company_id: Mapped[str | None] = mapped_column(String(64))
    warp_ban: Mapped[str | None] = mapped_column(String(64))
    warp_customer_id_text: Mapped[str | None] = mapped_column(Text)
    hubspot_company_id_text: Mapped[str | None] = mapped_column(Text)
    warp_ban_text: Mapped[str | None] = mapped_column(Text)
    fields: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    action: Mapped[str | None] = mapped_column(String(32))  # what fix does (or would do)
    detail: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(BigId)

    __table_args__ = (Index("ix_hubspot_reconciliation_items_run", "run_id", "category", "id"),)


class ReconciliationPair(Base):
    """Which customer a run has already met in HubSpot (and with which company): what lets
    the WARP pass find the customers HubSpot lacks, and a second company for one customer
    show as a duplicate, without holding either side in memory."""

    __tablename__ = "hubspot_reconciliation_pairs"

    run_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    warp_customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hubspot_company_id: Mapped[str] = mapped_column(String(64))


class CatchupWatermark(Base):
    """How far the catch-up has looked on one side ('hubspot', 'warp'), and which replica
    holds the current pass (a lease, so one replica does each interval's work)."""

    __tablename__ = "hubspot_catchup_watermarks"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    watermark: Mapped[datetime | None] = mapped_column(Timestamp)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(Timestamp)
    queued: Mapped[int] = mapped_column(Integer, server_default="0")  # by the last pass
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)
    # WARP on PostgreSQL: the 64-bit transaction id below which every transaction had ended
    # when the last pass began (the next pass reads rows written from here on, whatever
    # their `updated_at`). None: the side goes by `watermark` alone (SQLite, HubSpot).
    position: Mapped[int | None] = mapped_column(BigInteger)
    # Windows whose results could not all be read (more than a search returns, and too
    # narrow to split): how many so far, the latest one's time and what it held.
    cut_short: Mapped[int | None] = mapped_column(Integer)
    cut_short_at: Mapped[datetime | None] = mapped_column(Timestamp)
    cut_short_detail: Mapped[str | None] = mapped_column(Text)


class EntityLink(Base):
    """WARP customer <-> HubSpot company. A company known only to HubSpot has no customer id;
    a deleted or merged company keeps its row so nothing is silently recreated."""

    __tablename__ = "hubspot_entity_links"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    warp_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    hubspot_company_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # A usable ban: at most MAX_BAN_LENGTH characters (app/sync/core/identity.py), held in
    # `warp_ban_text`, and in `warp_ban` too when it fits in 64: the previous release reads
    # that one (app/store/widened.py; a later release drops it).
    warp_ban: Mapped[str | None] = mapped_column(String(64), index=True)
    warp_ban_text: Mapped[str | None] = mapped_column(Text, index=True)
    # 'active', 'deleted' (in HubSpot), 'unmatched' (HubSpot company, no WARP customer),
    # 'merged' (its company was merged into one another link already holds; held for an
    # operator to relink or split), 'warp_deleted' (the customer is gone from WARP)
    state: Mapped[str] = mapped_column(String(16), server_default="active")
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The event time of the latest deletion or restore applied: an older one is refused, so
    # deletion and restore are ordered by when they happened, never by processing order.
    state_changed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_synced_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # When a sync last read the company: a CRM edit after it that a sync's write overwrote
    # comes back from its webhook (app/sync/engine/crm_edits.py).
    hubspot_read_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # When HubSpot recorded hubsync's last write to the company (the answer's `updatedAt`, on
    # HubSpot's clock): a catch-up search hit older than it only lags behind that write
    # (app/sync/reconcile/catchup.py).
    hubspot_written_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class CompanyAlias(Base):
    """An old HubSpot company id (merged away) and the id it now resolves to."""

    __tablename__ = "hubspot_company_aliases"

    old_company_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    company_id: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(16), server_default="merge")
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class Conflict(Base):
    """A field changed on both sides that its rule leaves to a person (or that failed a rule)."""

    __tablename__ = "hubspot_conflicts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    warp_customer_id: Mapped[str] = mapped_column(String(64))
    hubspot_company_id: Mapped[str | None] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(128))
    warp_value: Mapped[str | None] = mapped_column(Text)
    hubspot_value: Mapped[str | None] = mapped_column(Text)
    base_value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), server_default="open")  # open | resolved
    resolution: Mapped[str | None] = mapped_column(String(16))  # WARP | HUBSPOT | VALUE
    resolved_value: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    detected_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)
    resolved_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index(
            "uq_hubspot_conflicts_open_field",
            "warp_customer_id",
            "field",
            unique=True,
            postgresql_where=text("state = 'open'"),
            sqlite_where=text("state = 'open'"),
        ),
        Index("ix_hubspot_conflicts_state_id", "state", "id"),
    )


class RateLimitGrant(Base):
    """A sliding-window log of HubSpot requests granted, shared by every replica, so the
    deployment as a whole never exceeds HUBSPOT_RATE_LIMIT."""

    __tablename__ = "hubspot_rate_limit_grants"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bucket: Mapped[str] = mapped_column(String(32))
    granted_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_hubspot_rate_limit_grants_bucket", "bucket", "granted_at"),)


# The buckets of the grants log: HubSpot's general ten-second window, and search's own window.
GENERAL_BUCKET = "hubspot"
SEARCH_BUCKET = "hubspot_search"


class RateLimitPause(Base):
    """A deployment-wide pause after HubSpot answered 429 (or the daily limit ran out)."""

    __tablename__ = "hubspot_rate_limit_pauses"

    bucket: Mapped[str] = mapped_column(String(32), primary_key=True)
    until: Mapped[datetime] = mapped_column(Timestamp)
    reason: Mapped[str | None] = mapped_column(Text)


class SchedulerTick(Base):
    """One fire time of a periodic task, claimed by exactly one replica."""

    __tablename__ = "hubsync_scheduler_ticks"

    task: Mapped[str] = mapped_column(String(64), primary_key=True)
    fire_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    claimed_by: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class ScheduledJobRecord(Base):
    """The scheduler's jobs as the whole deployment sees them: each job's trigger, its latest
    run by any replica (start, end, outcome, error, which replica) and its next fire time.
    Every replica writes here, so `hubsync status`, the dashboard and /metrics show the
    deployment's scheduled work, and a job nobody runs any more shows as late."""

    __tablename__ = "hubsync_scheduled_jobs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(Text)
    period_seconds: Mapped[float] = mapped_column(Float)
    next_fire_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_outcome: Mapped[str | None] = mapped_column(String(16))  # ok|error|postponed|skipped
    last_error: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    ran_by: Mapped[str | None] = mapped_column(String(128))
    last_success_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # A daily run postponed by a run in progress: its fire key, started when that run ends.
    pending_fire_key: Mapped[str | None] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class PortalBinding(Base):
    """Which HubSpot portal this database's links belong to (one row, id 1): a real portal
    (from the token's account info) or the built-in sandbox. Start-up refuses another one."""

    __tablename__ = "hubsync_portal"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # 'hubspot' | 'sandbox'
    portal_id: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class DirectionPause(Base):
    """A sync direction an operator paused ('outbound' WARP -> HubSpot, 'inbound' HubSpot ->
    WARP): workers claim none of its jobs until it is resumed; work still queues."""

    __tablename__ = "hubsync_paused_directions"

    direction: Mapped[str] = mapped_column(String(16), primary_key=True)
    paused_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    paused_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class AdminAuditEntry(Base):
    """Every operator action (console or API): who, what, on which object, when."""

    __tablename__ = "hubsync_admin_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class AdminSession(Base):
    """A console session, so that it can end before its cookie does: logout, "sign out
    everywhere" and a password change set `revoked_at`. The key is the SHA-256 of the
    session's random token (the cookie holds the token itself, signed)."""

    __tablename__ = "hubsync_admin_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    who: Mapped[str] = mapped_column(String(128))
    client: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)


class AdminLoginLink(Base):
    """A one-time console login link minted by `hubsync admin link` (the key is the SHA-256
    of its token): the running service redeems it once, before `expires_at`."""

    __tablename__ = "hubsync_admin_login_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    used_at: Mapped[datetime | None] = mapped_column(Timestamp)


class AdminLoginFailure(Base):
    """A failed console login, once per key it counts against ("client:<address>",
    "name:<login name>"): the login limit, shared by every process. Rows older than the
    limit's window are deleted as new ones come."""

    __tablename__ = "hubsync_admin_login_failures"
    __table_args__ = (Index("ix_hubsync_admin_login_failures_key", "key", "failed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255))
    failed_at: Mapped[datetime] = mapped_column(Timestamp, index=True)


class MinuteSample(Base):
    """One minute of the deployment's health, written by the scheduler's sampler once a
    minute (app/store/timeseries.py) and kept for a week and a day, so the console draws its
    charts without Prometheus. Counts cover the minute [minute, minute + 1 min); the queue's
    depth and oldest wait are read when the minute is sampled. The first replica to sample a
    minute writes it; the others only add the 429s their own process saw."""

    __tablename__ = "hubsync_minute_samples"

    minute: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    jobs_done: Mapped[int] = mapped_column(Integer)
    jobs_failed: Mapped[int] = mapped_column(Integer)
    queue_depth: Mapped[int] = mapped_column(Integer)  # pending jobs
    oldest_wait_seconds: Mapped[float] = mapped_column(Float)
    webhook_events: Mapped[int] = mapped_column(Integer)  # received in the minute
    # Requests granted in the minute (None where the grants log is one process's memory).
    hubspot_requests: Mapped[int | None] = mapped_column(Integer)
    hubspot_limit: Mapped[int] = mapped_column(Integer)  # the limit, per minute
    hubspot_429: Mapped[int] = mapped_column(Integer, server_default="0")
    # Queue -> HubSpot: a job's creation to its end, for done jobs that wrote to HubSpot.
    latency_p50_ms: Mapped[float | None] = mapped_column(Float)
    latency_p99_ms: Mapped[float | None] = mapped_column(Float)
    sampled_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)


class ReportDelivery(Base):
    """The outbox of the reports that come to the operator (app/sync/reports/): one row per
    report and destination, written before anything is sent, so a destination that is down
    delays the report and never loses it. `key` names what is reported ("run:12", "job
    failed:…"): the unique (key, destination) lets every replica offer the same report and
    exactly one row exist. Rows are pruned after a week."""

    __tablename__ = "hubsync_report_deliveries"
    __table_args__ = (
        Index("ix_hubsync_report_deliveries_key", "key", "destination", unique=True),
        Index("ix_hubsync_report_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255))
    destination: Mapped[str] = mapped_column(String(16))  # webhook|email
    kind: Mapped[str] = mapped_column(String(32))  # reconciliation|job_failed|job_late
    summary: Mapped[dict[str, Any]] = mapped_column(Json)
    run_id: Mapped[int | None] = mapped_column(BigId)  # its CSV is attached to the e-mail
    state: Mapped[str] = mapped_column(String(16))  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)


class WarpColumnChange(Base):
    """When a WARP column of a customer last changed, as WARP's own capture trigger saw it
    (app/warp/capture.py): the per-field change time LATEST_WINS uses for WARP's side. Kept
    per column, not per rule field: a JSON column's paths share its time (an upper bound)."""

    __tablename__ = "hubsync_warp_column_changes"

    warp_customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    column: Mapped[str] = mapped_column(String(128), primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(Timestamp)


__all__ = [
    "AdminAuditEntry",
    "AdminLoginFailure",
    "AdminSession",
    "Base",
    "CatchupWatermark",
    "CompanyAlias",
    "Conflict",
    "DirectionPause",
    "EntityLink",
    "FieldState",
    "IdempotencyKey",
    "MinuteSample",
    "PortalBinding",
    "RateLimitGrant",
    "RateLimitPause",
    "ReconciliationItem",
    "ReconciliationPair",
    "ReconciliationRun",
    "ReportDelivery",
    "ScheduledJobRecord",
    "SchedulerTick",
    "SyncConfigChange",
    "SyncConfigRule",
    "SyncJob",
    "SyncLog",
    "WarpColumnChange",
    "WebhookEvent",
]


class SchemaCompat(Base):
    """What each migration declares when it runs: the oldest code revision that still works
    on the schema it leaves (expand, then contract). A release whose code is older than the
    schema reads it to know whether it may stay ready (`app.store.migrate.schema_state`)."""

    __tablename__ = "hubsync_schema_compat"

    revision: Mapped[str] = mapped_column(String(64), primary_key=True)
    serves_code_from: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[datetime] = mapped_column(Timestamp, server_default=NOW)
