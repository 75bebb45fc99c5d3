"""Settling a conflict by hand: an operator takes WARP's value, HubSpot's value, or types one.

The engine does the writing. A resolution moves the field's merge base so that the chosen
value is the one side's change the engine then carries to the other side by its usual rule
("changed on one side only: that change wins"):

* WARP's value: the base becomes HubSpot's value, so WARP alone "changed" and is written
  to HubSpot;
* HubSpot's value: the base becomes WARP's value, so HubSpot's is written to WARP;
* a typed value: it is written to WARP first (validated by the field's rule), the base
  becomes HubSpot's value, and the engine writes it to HubSpot. While HubSpot -> WARP is
  paused that first write may not happen, so a typed value is refused (409, the conflict
  stays open); WARP's or HubSpot's value is accepted, and the engine holds the write to the
  paused side until the resume.

Then the customer is synced at once (both ways) — or queued, while another worker holds it or
a direction is paused. If either side changed again meanwhile, the engine sees it and the
conflict comes back rather than being papered over.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.context import AppContext
from app.errors import HubsyncError
from app.store import sync_state
from app.store.admin_audit import record_action
from app.store.conflict_hold import holding_conflict
from app.store.console import ConflictRow
from app.store.pauses import INBOUND, paused_directions
from app.store.queue import EntityBusyError, QueueRepository
from app.store.sync_config import load_rules
from app.sync.core.jobs import (
    EntityType,
    JobDirection,
    JobHandler,
    JobOutcome,
    JobSource,
    OutcomeStatus,
)
from app.sync.core.mapping import MappingError, canonical_to_warp, normalize
from app.sync.core.rules import FieldRule
from app.sync.worker.lease import LeaseLostError, holding_lease
from app.warp.connector import Refusal, WarpConnector, WarpWrite


class Choice(StrEnum):
    WARP = "WARP"
    HUBSPOT = "HUBSPOT"
    VALUE = "VALUE"


# How a conflict whose customer was deleted from WARP is closed: moot, with no value.
WARP_DELETED = "WARP_DELETED"


class ResolutionError(HubsyncError, ValueError):
    """The resolution cannot be made; `reason` is 'not_found', 'not_open', 'invalid',
    'paused' (a typed value while HubSpot -> WARP is paused) or 'customer_deleted' (the
    conflict is then closed as moot)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Resolution:
    conflict: ConflictRow
    choice: Choice
    value: str | None
    job_id: int | None
    # The sync's outcome when it ran at once; None when it was queued instead.
    outcome: JobOutcome | None

    def to_json(self) -> dict[str, Any]:
        return {
            "conflict_id": self.conflict.id,
            "customer_id": self.conflict.warp_customer_id,
            "field": self.conflict.field,
            "choice": self.choice.value,
            "value": self.value,
            "job_id": self.job_id,
            "synced": self.outcome is not None,
            "status": self.outcome.status.value if self.outcome else "queued",
            "error": self.outcome.error if self.outcome else None,
        }


@dataclass(frozen=True)
class ResolveServices:
    engine: AsyncEngine
    warp: WarpConnector
    queue: QueueRepository
    handler: JobHandler | None
    lease_seconds: float = 60.0

    @classmethod
    def for_context(cls, context: AppContext) -> ResolveServices:
        queue = context.queue
        return cls(
            context.engine,
            context.warp,
            queue if isinstance(queue, QueueRepository) else QueueRepository(context.engine),
            context.job_handler,
            context.settings.lease_seconds,
        )


def parse_choice(raw: object) -> Choice:
    try:
        return Choice(str(raw).upper())
    except ValueError:
        raise ResolutionError(
            "invalid", "choice must be WARP, HUBSPOT or VALUE (with a value)"
        ) from None


async def resolve_conflict(
    services: ResolveServices, conflict_id: int, choice: Choice, value: str | None, *, by: str
) -> Resolution:
    """Write and record the operator's choice, then sync the customer. The conflict is held
    from its read to its closing (`holding_conflict`), so of two operators resolving it at
    once one writes and the other is refused as `not_open`: the record is what was written.
    A customer deleted from WARP takes no value: its conflict is closed as moot
    (`customer_deleted`) rather than recorded as resolved to a value that went nowhere."""
    async with services.engine.connect() as connection:
        rules = {rule.warp_field: rule for rule in await load_rules(connection)}
    async with holding_conflict(services.engine, conflict_id) as (connection, conflict):
        if conflict is None:
            raise ResolutionError("not_found", f"conflict {conflict_id} does not exist")
        if conflict.state != "open":
            raise ResolutionError("not_open", f"conflict {conflict_id} is already {conflict.state}")
        chosen, base, warp_typed = _choose(conflict, rules, choice, value)
        writes_warp = warp_typed is not _UNSET and chosen != conflict.warp_value
        if writes_warp and await _inbound_paused(services.engine):
            raise ResolutionError(
                "paused",
                f"HubSpot -> WARP is paused, and a typed value is written to WARP first; "
                f"conflict {conflict.id} stays open: resume inbound, or take WARP's or "
                "HubSpot's value (applied when the paused direction resumes)",
            )
        gone = await _write_warp(services.warp, conflict, chosen, warp_typed)
        if gone:
            await _close_as_moot(connection, conflict, choice, by)
        else:
            await _record(connection, conflict, choice, chosen=chosen, base=base, by=by)
    if gone:
        raise ResolutionError(
            "customer_deleted",
            f"customer {conflict.warp_customer_id} no longer exists in WARP, so no value can "
            f"reach it; conflict {conflict_id} is closed as moot and nothing was written",
        )
    job_id, outcome = await sync_customer(services, conflict.warp_customer_id)
    return Resolution(conflict, choice, chosen, job_id, outcome)


_UNSET = object()


def _choose(
    conflict: ConflictRow, rules: dict[str, FieldRule], choice: Choice, value: str | None
) -> tuple[str | None, str | None, Any]:
    """(the chosen value, the merge base that makes the engine carry it, and for a typed
    value the WARP value to write first — `_UNSET` when WARP is not written here)."""
    rule = rules.get(conflict.field)
    if rule is None:
        raise ResolutionError("invalid", f"no rule maps the field {conflict.field!r} any more")
    if choice is Choice.WARP:
        return conflict.warp_value, conflict.hubspot_value, _UNSET
    if choice is Choice.HUBSPOT:
        return conflict.hubspot_value, conflict.warp_value, _UNSET
    if value is None:
        raise ResolutionError("invalid", "a typed resolution needs a value")
    try:
        chosen = normalize(rule, value.strip() or None)
        warp_typed = canonical_to_warp(rule, chosen)
    except MappingError as exc:
        raise ResolutionError("invalid", str(exc)) from None
    return chosen, conflict.hubspot_value, warp_typed


async def _write_warp(
    warp: WarpConnector, conflict: ConflictRow, chosen: str | None, warp_typed: Any
) -> bool:
    """Write a typed value to WARP (first: if it fails, nothing is recorded); True when the
    customer is gone from WARP. A value WARP's database refuses is `invalid`."""
    customer_id = conflict.warp_customer_id
    if warp_typed is _UNSET or chosen == conflict.warp_value:
        return not await warp.existing_ids([customer_id])
    refusals = await warp.write_many([WarpWrite(customer_id, {conflict.field: warp_typed})])
    refusal = refusals.get(customer_id)
    if refusal is None:
        return False
    if refusal.kind is Refusal.MISSING:
        return True
    raise ResolutionError("invalid", refusal.reason)


async def _record(
    connection: AsyncConnection,
    conflict: ConflictRow,
    choice: Choice,
    *,
    chosen: str | None,
    base: str | None,
    by: str,
) -> None:
    await connection.execute(
        update(sync_state.field_states)
        .where(
            sync_state.field_states.c.warp_customer_id == conflict.warp_customer_id,
            sync_state.field_states.c.field == conflict.field,
        )
        .values(base_value=base, updated_at=datetime.now(UTC))
    )
    await _close(connection, conflict, choice.value, chosen, by)
    await record_action(
        connection,
        actor=by,
        action="conflict.resolve",
        target=f"conflict:{conflict.id}",
        detail={
            "customer_id": conflict.warp_customer_id,
            "field": conflict.field,
            "choice": choice.value,
            "value": chosen,
            "warp_value": conflict.warp_value,
            "hubspot_value": conflict.hubspot_value,
        },
    )


async def _close_as_moot(
    connection: AsyncConnection, conflict: ConflictRow, choice: Choice, by: str
) -> None:
    await _close(connection, conflict, WARP_DELETED, None, by)
    await record_action(
        connection,
        actor=by,
        action="conflict.close",
        target=f"conflict:{conflict.id}",
        detail={
            "customer_id": conflict.warp_customer_id,
            "field": conflict.field,
            "asked": choice.value,
            "reason": "the customer no longer exists in WARP; nothing was written",
        },
    )


async def _close(
    connection: AsyncConnection, conflict: ConflictRow, how: str, value: str | None, by: str
) -> None:
    closed = await connection.execute(
        update(sync_state.conflicts)
        .where(sync_state.conflicts.c.id == conflict.id, sync_state.conflicts.c.state == "open")
        .values(
            state="resolved",
            resolution=how,
            resolved_value=value,
            resolved_by=by[:128],
            resolved_at=datetime.now(UTC),
        )
    )
    if closed.rowcount != 1:  # held since it was read open: only a bug gets here
        raise ResolutionError("not_open", f"conflict {conflict.id} was closed meanwhile")


async def _inbound_paused(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        return INBOUND in await paused_directions(connection)


async def sync_customer(
    services: ResolveServices, customer_id: str
) -> tuple[int | None, JobOutcome | None]:
    """Sync the customer both ways now through the engine; queue it instead while a direction
    is paused, another worker holds it, or no engine runs in this process."""
    async with services.engine.connect() as connection:
        paused = await paused_directions(connection)
    if not paused and services.handler is not None:
        worker_id = f"operator:{uuid.uuid4().hex[:12]}"
        try:
            job = await services.queue.claim_entity(
                EntityType.CUSTOMER,
                customer_id,
                worker_id=worker_id,
                lease_seconds=services.lease_seconds,
                source=JobSource.OPERATOR,
                direction=JobDirection.BOTH,
            )
        except EntityBusyError:
            pass
        else:
            try:  # the lease is renewed while the sync runs, as a worker's is
                [outcome] = await holding_lease(
                    services.queue,
                    worker_id,
                    [job.id],
                    services.lease_seconds,
                    services.handler([job]),
                )
            except LeaseLostError as exc:
                outcome = JobOutcome(
                    job.id, OutcomeStatus.RETRY, error=str(exc), error_kind="lease_lost"
                )
            except BaseException:
                await services.queue.release(worker_id, [job.id])
                raise
            await services.queue.complete(worker_id, [outcome], claims={job.id: job.claim})
            return job.id, outcome
    async with services.engine.begin() as connection:
        queued = await services.queue.enqueue(
            connection,
            EntityType.CUSTOMER,
            customer_id,
            priority=1,
            source=JobSource.OPERATOR,
            direction=JobDirection.BOTH,
        )
    return queued.job_id, None
