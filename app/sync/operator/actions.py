"""What an operator can do, whichever door they come through (console, API, CLI): pause and
resume a direction, re-run failed jobs and webhook events, sync a customer now, replace the
field rules. Each action and its audit record commit in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.admin_audit import record_action
from app.store.console import FailedFilter, failed_job_ids
from app.store.pauses import pause_direction, resume_direction
from app.store.queue import QueueRepository
from app.store.sync_config import replace_rules
from app.store.sync_scope import save_scope
from app.sync.core.jobs import EntityType, JobDirection, JobSource
from app.sync.core.rule_columns import check_rules_fit_columns
from app.sync.core.rules import FieldRule
from app.sync.core.scope import Scope, check_scope_fits_columns, conditions_summary
from app.sync.intake.routing import reprocess_events
from app.warp.columns import real_columns


async def pause(engine: AsyncEngine, direction: str, *, by: str, reason: str | None) -> bool:
    async with engine.begin() as connection:
        changed = await pause_direction(connection, direction, by=by, reason=reason)
        if changed:
            await record_action(
                connection,
                actor=by,
                action="direction.pause",
                target=direction,
                detail={"reason": reason} if reason else None,
            )
    return changed


async def resume(engine: AsyncEngine, direction: str, *, by: str) -> bool:
    async with engine.begin() as connection:
        changed = await resume_direction(connection, direction)
        if changed:
            await record_action(connection, actor=by, action="direction.resume", target=direction)
    return changed


async def retry_failed_jobs(
    queue: QueueRepository,
    *,
    by: str,
    job_ids: Sequence[int] | None = None,
    matching: FailedFilter | None = None,
) -> int:
    """Failed jobs back to the queue: these ids, or every one matching the filter."""
    if job_ids is None:
        async with queue.engine.connect() as connection:
            job_ids = await failed_job_ids(connection, matching or FailedFilter())
    requeued = await queue.requeue_failed(list(job_ids)) if job_ids else 0
    async with queue.engine.begin() as connection:
        await record_action(
            connection,
            actor=by,
            action="jobs.retry",
            target=f"{len(job_ids)} job(s)",
            detail={
                "job_ids": list(job_ids)[:100],
                "filter": matching.to_json() if matching else None,
                "requeued": requeued,
            },
        )
    return requeued


async def reprocess_webhook_events(
    engine: AsyncEngine,
    queue: QueueRepository,
    *,
    by: str,
    app_id: str | None,
    event_ids: Sequence[int] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    async with engine.begin() as connection:
        summary = await reprocess_events(
            connection, queue=queue, app_id=app_id, event_ids=event_ids, status=status
        )
        result = summary.to_json()
        await record_action(
            connection,
            actor=by,
            action="webhooks.reprocess",
            target=f"{summary.received} event(s)",
            detail={"event_ids": list(event_ids or [])[:100], "status": status, **result},
        )
    return result


async def queue_customer_now(
    engine: AsyncEngine, queue: QueueRepository, customer_id: str, *, by: str
) -> int:
    """The console's "sync now": the most urgent job for this customer, both ways."""
    async with engine.begin() as connection:
        queued = await queue.enqueue(
            connection,
            EntityType.CUSTOMER,
            customer_id,
            priority=1,
            source=JobSource.OPERATOR,
            direction=JobDirection.BOTH,
        )
        await record_action(
            connection,
            actor=by,
            action="customer.sync",
            target=f"customer:{customer_id}",
            detail={"job_id": queued.job_id},
        )
    return queued.job_id


async def check_rules_for_warp(
    warp_engine: AsyncEngine, customers_table: str, rules: Sequence[FieldRule]
) -> None:
    """Raise `InvalidRuleError` when a rule does not fit the WARP table as it really is (its
    columns read now), and `TableMissingError` when the table is not there. Every door that
    stores rules runs this, so none can store a rule set the others would refuse."""
    check_rules_fit_columns(rules, await real_columns(warp_engine, customers_table))


async def change_rules(
    engine: AsyncEngine,
    rules: Sequence[FieldRule],
    *,
    by: str,
    warp_engine: AsyncEngine,
    customers_table: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate against WARP's columns and store a new rule set (its before/after kept in the
    rules' own trail, the change in the audit trail)."""
    await check_rules_for_warp(warp_engine, customers_table, rules)
    async with engine.begin() as connection:
        before, after = await replace_rules(connection, rules, changed_by=by)
        changed = sorted(
            {rule["warp_field"] for rule in after if rule not in before}
            | {rule["warp_field"] for rule in before if rule not in after}
        )
        await record_action(
            connection, actor=by, action="rules.replace", target=", ".join(changed)[:255] or None
        )
    return before, after


async def check_scope_for_warp(
    warp_engine: AsyncEngine, customers_table: str, scope: Scope
) -> None:
    """Raise `InvalidScopeError` when a condition names a column the WARP table does not
    have (read now), or one that cannot be compared; `TableMissingError` without the table."""
    if not scope.everyone:
        check_scope_fits_columns(scope, await real_columns(warp_engine, customers_table))


async def change_scope(
    engine: AsyncEngine,
    scope: Scope,
    *,
    by: str,
    warp_engine: AsyncEngine,
    customers_table: str,
) -> Scope:
    """Validate against WARP's columns and store a new sync scope, audited; returns the old
    one. Customers it leaves out stop syncing at their next job; those it lets in sync at
    their next job or reconciliation."""
    await check_scope_for_warp(warp_engine, customers_table, scope)
    async with engine.begin() as connection:
        before = await save_scope(connection, scope, changed_by=by)
        await record_action(
            connection,
            actor=by,
            action="scope.replace",
            target="; ".join(conditions_summary(scope))[:255] or "everyone",
            detail={"before": before.to_json(), "after": scope.to_json()},
        )
    return before
