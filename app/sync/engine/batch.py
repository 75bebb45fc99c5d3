"""The bookkeeping of one engine batch: each job's outcome and its lines for the sync log.

Every way a job can end is one method here — done with a result, skipped with a reason, failed
for good or for now — so the engine says what happened and this module says how it is
recorded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from app.hubspot.errors import HubSpotError, HubSpotPermanentError
from app.sync.core.jobs import ClaimedJob, JobOutcome, OutcomeStatus


def error_kind(error: HubSpotError) -> str:
    """`HubSpotValidationError` -> "validation", for the job's `last_error_kind`."""
    return type(error).__name__.removeprefix("HubSpot").removesuffix("Error").lower() or "hubspot"


@dataclass
class SyncBatch:
    outcomes: dict[int, JobOutcome] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0  # time.perf_counter() when the batch began (its log's duration)

    def settled(self, job: ClaimedJob) -> bool:
        return job.id in self.outcomes

    def mark(self) -> tuple[dict[int, JobOutcome], int]:
        """Where the batch stands now, for `rewind`."""
        return dict(self.outcomes), len(self.logs)

    def rewind(self, mark: tuple[dict[int, JobOutcome], int]) -> None:
        """Back to where it stood at `mark`: what was settled since is forgotten."""
        outcomes, logged = mark
        self.outcomes = dict(outcomes)
        del self.logs[logged:]

    def done(
        self,
        job: ClaimedJob,
        result: dict[str, Any],
        *,
        customer_id: str | None,
        company_id: str | None,
        changes: list[dict[str, Any]] | None = None,
    ) -> None:
        self.outcomes[job.id] = JobOutcome(job.id, OutcomeStatus.DONE, result=result)
        self.note(
            job,
            customer_id=customer_id,
            company_id=company_id,
            outcome=result["outcome"],
            changes=changes,
        )

    def skip(
        self,
        job: ClaimedJob,
        reason: str,
        *,
        customer_id: str | None = None,
        company_id: str | None = None,
        outcome: str = "skipped",
    ) -> None:
        """Nothing to sync, for a reason an operator should be able to read (done, not failed:
        retrying would change nothing)."""
        result = {"outcome": outcome, "reason": reason}
        self.outcomes[job.id] = JobOutcome(job.id, OutcomeStatus.DONE, result=result)
        self.note(
            job, customer_id=customer_id, company_id=company_id, outcome="skipped", error=reason
        )

    def fail(
        self,
        job: ClaimedJob,
        message: str,
        kind: str,
        *,
        customer_id: str | None = None,
        company_id: str | None = None,
        error: HubSpotError | None = None,
        retry: bool = False,
    ) -> None:
        """Failed for good (HubSpot refused, bad data) or for now (`retry`, or a transient
        HubSpot error: the queue backs off and tries again)."""
        if error is not None:
            retry = not isinstance(error, HubSpotPermanentError)
        status = OutcomeStatus.RETRY if retry else OutcomeStatus.FAILED
        retry_after = error.retry_after if error is not None else None
        self.outcomes[job.id] = JobOutcome(
            job.id, status, error=message, error_kind=kind, retry_after=retry_after
        )
        self.note(
            job, customer_id=customer_id, company_id=company_id, outcome="failed", error=message
        )

    def fail_hubspot(
        self,
        job: ClaimedJob,
        error: HubSpotError,
        *,
        customer_id: str | None = None,
        company_id: str | None = None,
    ) -> None:
        self.fail(
            job,
            str(error),
            error_kind(error),
            customer_id=customer_id,
            company_id=company_id,
            error=error,
        )

    def share(self, follower: ClaimedJob, lead: ClaimedJob) -> None:
        """`follower` meant the same sync as `lead` (one pair): it ends with lead's outcome."""
        outcome = self.outcomes[lead.id]
        self.outcomes[follower.id] = dataclasses.replace(outcome, job_id=follower.id)
        self.logs.append(
            {
                **next(e for e in reversed(self.logs) if e["job_id"] == _log_id(lead)),
                "job_id": _log_id(follower),
                "source": follower.source.value,
                "direction": follower.direction.value,
                "changes": None,  # the lead's line holds them: written once, logged once
            }
        )

    def note(
        self,
        job: ClaimedJob,
        *,
        customer_id: str | None,
        company_id: str | None,
        outcome: str,
        changes: list[dict[str, Any]] | None = None,
        error: str | None = None,
    ) -> None:
        self.logs.append(
            {
                "job_id": _log_id(job),
                "warp_customer_id": customer_id,
                "hubspot_company_id": company_id,
                "source": job.source.value,
                "direction": job.direction.value,
                "outcome": outcome,
                "changes": changes or None,
                "error": error,
            }
        )


def _log_id(job: ClaimedJob) -> int | None:
    return job.id if job.id > 0 else None
