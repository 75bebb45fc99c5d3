"""Jobs wait while a precondition of syncing is not met (HubSpot's properties not created yet),
rather than failing for good on an error that only means "not yet".

`gated(handler, readiness)` is a `JobHandler`: while `readiness` is not ready it waits a little
(the worker's heartbeat keeps the batch's lease meanwhile) and, if still not ready, hands every
job back to retry after `retry_after` seconds with the reason — the engine is not called, so
no HubSpot request is spent and no job fails because of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from app.sync.core.jobs import ClaimedJob, JobHandler, JobOutcome, OutcomeStatus

WAIT_SECONDS = 5.0
RETRY_AFTER_SECONDS = 5.0


class Readiness(Protocol):
    @property
    def ready(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    async def wait(self, timeout: float) -> bool: ...  # noqa: ASYNC109 -- a bounded wait


def gated(
    handler: JobHandler,
    readiness: Readiness,
    *,
    wait_seconds: float = WAIT_SECONDS,
    retry_after: float = RETRY_AFTER_SECONDS,
) -> JobHandler:
    async def handle(jobs: Sequence[ClaimedJob]) -> Sequence[JobOutcome]:
        if readiness.ready or await readiness.wait(wait_seconds):
            return await handler(jobs)
        return [
            JobOutcome(
                job.id,
                OutcomeStatus.RETRY,
                error=readiness.reason,
                error_kind="not_ready",
                retry_after=retry_after,
            )
            for job in jobs
        ]

    return handle
