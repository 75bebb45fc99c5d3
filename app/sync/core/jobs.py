"""The contract between the queue and whatever does the work: claimed jobs in, outcomes out.

The worker claims a batch of jobs and hands it to a `JobHandler` (the sync engine); the handler
returns one `JobOutcome` per job, and the worker records it (done, retry later, failed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EntityType(StrEnum):
    CUSTOMER = "customer"  # keyed by WARP customer id
    COMPANY = "company"  # keyed by HubSpot company id


class JobDirection(StrEnum):
    TO_HUBSPOT = "to_hubspot"
    TO_WARP = "to_warp"
    BOTH = "both"


class JobSource(StrEnum):
    API = "api"
    WEBHOOK = "webhook"
    RECONCILIATION = "reconciliation"
    OPERATOR = "operator"
    CAPTURE = "capture"  # a change noted by the capture trigger in WARP (app/warp/capture.py)


class OutcomeStatus(StrEnum):
    DONE = "done"
    RETRY = "retry"  # transient: try again after a backoff (or `retry_after`)
    FAILED = "failed"  # permanent: keep visible with the reason, re-runnable by an operator


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    entity_type: EntityType
    entity_key: str
    direction: JobDirection
    source: JobSource
    priority: int
    attempts: int  # including this one
    created_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    # The fencing token of this claim (the job row's claim counter when it was claimed); 0
    # for work that is not a queue job, which nothing can claim twice.
    claim: int = 0


def stand_in_job(customer_id: str, source: JobSource) -> ClaimedJob:
    """The job a pair is judged under when no queue job exists (a reconciliation's pair, a
    preview's): a customer synced both ways, never queued, nothing to fence (claim 0)."""
    return ClaimedJob(
        id=0,
        entity_type=EntityType.CUSTOMER,
        entity_key=customer_id,
        direction=JobDirection.BOTH,
        source=source,
        priority=10,
        attempts=0,
        created_at=datetime.now(UTC),
    )


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    status: OutcomeStatus
    error: str | None = None
    error_kind: str | None = None
    retry_after: float | None = None  # seconds; overrides the backoff when the upstream says so
    result: dict[str, Any] | None = None


JobHandler = Callable[[Sequence[ClaimedJob]], Awaitable[Sequence[JobOutcome]]]
