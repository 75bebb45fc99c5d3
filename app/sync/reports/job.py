"""The reports' scheduled job: find what to report, put it in the outbox, send what is due.

Every replica runs it. Finding is idempotent across replicas (the outbox's unique key per
report and destination), sending is one replica per row (a claim with a lease). It never
touches a reconciliation run or another job: a destination that is down, slow or refusing
only delays its own row, which is retried with exponential backoff (from `retry_base`,
doubling up to `retry_max_delay`) and, after `max_attempts`, left `failed` on the dashboard.

What is reported:
- a scheduled reconciliation run that ended (done or failed) within `LOOKBACK` (a replica
  that starts later still reports a run it missed; older ones are history, not news);
- a scheduled job whose last run failed, once per failure streak (keyed by its last
  success), and a job that is late, once per lateness (this job itself excepted: a report
  about it would travel by it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from app.store import reconciliation as runs
from app.store import report_outbox as outbox
from app.store.reconciliation import RunRecord
from app.store.report_outbox import Delivery
from app.store.scheduled_jobs import ERROR, ScheduledJobStatus, load_scheduled_jobs
from app.sync.reconcile.report import csv_text
from app.sync.reports.destinations import DeliveryError, Destination
from app.sync.reports.summary import JOB_FAILED, JOB_LATE, job_summary, run_summary, top_drifts

log = logging.getLogger("hubsync.reports")

REPORTS_JOB_ID = "reports"
LOOKBACK = timedelta(days=1)
KEEP = timedelta(days=7)  # longer than LOOKBACK: a pruned key is never offered again
CLAIM_LEASE = timedelta(minutes=2)  # far beyond one send's timeout
PER_PASS = 20
CSV_LIMIT_BYTES = 10 * 1024 * 1024
DRIFTS_READ = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Reports:
    engine: AsyncEngine
    destinations: Sequence[Destination]
    public_url: str | None = None
    retry_base: float = 30.0
    retry_max_delay: float = 3600.0
    max_attempts: int = 10
    clock: Callable[[], datetime] = utc_now

    async def __call__(self) -> None:
        await self.collect()
        await self.deliver_due()
        await outbox.prune_deliveries(self.engine, self.clock() - KEEP)

    # -- finding what to report ----------------------------------------------------------

    @property
    def destination_names(self) -> list[str]:
        return [destination.name for destination in self.destinations]

    async def collect(self) -> int:
        """Offer every report not offered yet; how many outbox rows this wrote."""
        now = self.clock()
        written = 0
        async with self.engine.connect() as connection:
            ended = await runs.finished_scheduled_runs(connection, since=now - LOOKBACK)
            new_runs = [run for run in ended if not await outbox.was_offered(connection, _key(run))]
            jobs = await load_scheduled_jobs(connection, now)
        for run in new_runs:
            written += await self._offer_run(run, now)
        for job in jobs:
            if job.job == REPORTS_JOB_ID:  # its own failure could not be sent by it anyway
                continue
            for key, kind in _job_reports(job):
                written += await outbox.offer(
                    self.engine,
                    key,
                    kind=kind,
                    summary=job_summary(job, kind, self.public_url),
                    destinations=self.destination_names,
                    now=now,
                )
        return written

    async def _offer_run(self, run: RunRecord, now: datetime) -> int:
        async with self.engine.connect() as connection:
            drifting = await runs.items_page(
                connection, run.id, category="drift", limit=DRIFTS_READ
            )
        written = await outbox.offer(
            self.engine,
            _key(run),
            kind="reconciliation",
            summary=run_summary(run, top_drifts(drifting), self.public_url),
            destinations=self.destination_names,
            now=now,
            run_id=run.id,
        )
        if written:
            log.info("reconciliation run %d: report queued for %s", run.id, self.destination_names)
        return written

    # -- sending -------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Send every due row this replica claims; how many were delivered."""
        by_name = {destination.name: destination for destination in self.destinations}
        delivered = 0
        for _ in range(PER_PASS):
            # One row claimed at a time, just before it is sent: a claim never lapses while
            # the row waits behind slow sends, so no other replica sends it meanwhile.
            claimed = await outbox.claim_due(
                self.engine, self.clock(), destinations=list(by_name), lease=CLAIM_LEASE, limit=1
            )
            if not claimed:
                break
            [delivery] = claimed
            destination = by_name[delivery.destination]
            try:
                csv = await self._csv(delivery)
                await destination.send(delivery.summary, csv, delivery.run_id)
            except DeliveryError as exc:
                await self._failed(delivery, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 -- any failure is the row's, never the job's
                await self._failed(delivery, f"{delivery.destination}: {type(exc).__name__}")
                continue
            await outbox.mark_sent(self.engine, delivery.id, self.clock())
            log.info(
                "report %s sent by %s (attempt %d)",
                delivery.key,
                delivery.destination,
                delivery.attempts,
            )
            delivered += 1
        return delivered

    async def _csv(self, delivery: Delivery) -> bytes | None:
        """The run's report as CSV for the e-mail (the webhook links to it instead)."""
        if delivery.run_id is None or delivery.destination != "email":
            return None
        parts: list[str] = []
        size = 0
        async for text in csv_text(delivery.run_id, runs.iter_items(self.engine, delivery.run_id)):
            size += len(text)
            if size > CSV_LIMIT_BYTES:
                parts.append("# truncated: the whole report is at the console's link\n")
                break
            parts.append(text)
        return "".join(parts).encode()

    async def _failed(self, delivery: Delivery, error: str) -> None:
        if delivery.attempts >= self.max_attempts:
            await outbox.mark_given_up(self.engine, delivery.id, error=error)
            log.error(
                "report %s to %s given up after %d attempts: %s",
                delivery.key,
                delivery.destination,
                delivery.attempts,
                error,
            )
            return
        delay = min(self.retry_base * 2 ** (delivery.attempts - 1), self.retry_max_delay)
        await outbox.mark_retry(
            self.engine,
            delivery.id,
            error=error,
            next_attempt_at=self.clock() + timedelta(seconds=delay),
        )
        log.warning(
            "report %s to %s failed (attempt %d), retried in %g s: %s",
            delivery.key,
            delivery.destination,
            delivery.attempts,
            delay,
            error,
        )


def _key(run: RunRecord) -> str:
    return f"run:{run.id}"


def _job_reports(job: ScheduledJobStatus) -> list[tuple[str, str]]:
    """The reports a job's row calls for, each keyed so it is sent once."""
    since = (job.last_success_at or job.registered_at).isoformat()
    found = []
    if job.last_outcome == ERROR:
        found.append((f"job-failed:{job.job}:{since}", JOB_FAILED))
    if job.late:
        found.append((f"job-late:{job.job}:{since}", JOB_LATE))
    return found
