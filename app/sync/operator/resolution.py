"""Settling a conflict by hand: an operator takes WARP's value, HubSpot's value, or types one.

The engine does the writing. A resolution moves the field's merge base so that the chosen
value is the one side's change the engine then carries to the other side by its usual rule
("changed on one side only: that change wins"):

* WARP's value: the base becomes HubSpot's value, so WARP alone "changed" and is written
  to HubSpot;
* HubSpot's value: the base becomes WARP's value, so HubSpot's is written to WARP;
* a typed value: it is written to WARP first (validated by the field's rule), the base
  becomes HubSpot's value, and the engine writes it to HubSpot.

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
from sqlalchemy.ext.asyncio import AsyncEngine

from app.context import AppContext
from app.errors import HubsyncError
from app.store import sync_state
from app.store.admin_audit import record_action
from app.store.console import ConflictRow, get_conflict
from app.store.pauses import paused_directions
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
from app.sync.worker.lease import LeaseLostError, holding_lease
from app.warp.connector import WarpConnector, WarpWrite


class Choice(StrEnum):
    WARP = "WARP"
    HUBSPOT = "HUBSPOT"
    VALUE = "VALUE"


class ResolutionError(HubsyncError, ValueError):
    """The resolution cannot be made; `reason` is 'not_found', 'not_open' or 'invalid'."""

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
    async with services.engine.connect() as connection:
        conflict = await get_conflict(connection, conflict_id)
        rules = {rule.warp_field: rule for rule in await load_rules(connection)}
    if conflict is None:
        raise ResolutionError("not_found", f"conflict {conflict_id} does not exist")
    if conflict.state != "open":
        raise ResolutionError("not_open", f"conflict {conflict_id} is already {conflict.state}")
    rule = rules.get(conflict.field)
    if rule is None:
        raise ResolutionError("invalid", f"no rule maps the field {conflict.field!r} any more")
    customer_id = conflict.warp_customer_id
    warp_value, hubspot_value = conflict.warp_value, conflict.hubspot_value
    if choice is Choice.WARP:
        chosen, base = warp_value, hubspot_value
    elif choice is Choice.HUBSPOT:
        chosen, base = hubspot_value, warp_value
    else:
        if value is None:
            raise ResolutionError("invalid", "a typed resolution needs a value")
        try:
            chosen = normalize(rule, value.strip() or None)
            warp_typed = canonical_to_warp(rule, chosen)
        except MappingError as exc:
            raise ResolutionError("invalid", str(exc)) from None
        base = hubspot_value
        if chosen != warp_value:  # WARP first: if it fails, nothing is recorded
            await services.warp.write_many([WarpWrite(customer_id, {conflict.field: warp_typed})])
    async with services.engine.begin() as connection:
        await connection.execute(
            update(sync_state.field_states)
            .where(
                sync_state.field_states.c.warp_customer_id == customer_id,
                sync_state.field_states.c.field == conflict.field,
            )
            .values(base_value=base, updated_at=datetime.now(UTC))
        )
        await connection.execute(
            update(sync_state.conflicts)
            .where(sync_state.conflicts.c.id == conflict.id, sync_state.conflicts.c.state == "open")
            .values(
                state="resolved",
                resolution=choice.value,
                resolved_value=chosen,
                resolved_by=by[:128],
                resolved_at=datetime.now(UTC),
            )
        )
        await record_action(
            connection,
            actor=by,
            action="conflict.resolve",
            target=f"conflict:{conflict.id}",
            detail={
                "customer_id": customer_id,
                "field": conflict.field,
                "choice": choice.value,
                "value": chosen,
                "warp_value": warp_value,
                "hubspot_value": hubspot_value,
            },
        )
    job_id, outcome = await sync_customer(services, customer_id)
    return Resolution(conflict, choice, chosen, job_id, outcome)


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
