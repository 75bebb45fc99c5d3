"""The counters and histograms, and the few calls that record them.

Each call site is one line at a choke point: the HubSpot client's request path, the queue's
recording of finished jobs (whoever ran them), the webhook route. Under several uvicorn
workers prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set up by
`hubsync serve --workers N`) keeps each process's values in a file of that directory and
`/metrics` sums them, so a counter is the deployment pod's total whichever process answers
the scrape.

Label values are a small fixed set (operations, outcomes, directions): never ids or paths.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import prometheus_client

from app.sync.core.jobs import JobDirection, JobSource, OutcomeStatus

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

JOBS_FINISHED = prometheus_client.Counter(
    "hubsync_jobs_finished",
    "Sync job attempts finished, by direction and outcome (done; retry: back to the queue "
    "after a backoff; failed: for good, visible and re-runnable).",
    ["direction", "outcome"],
)
QUEUE_TO_HUBSPOT = prometheus_client.Histogram(
    "hubsync_queue_to_hubspot_seconds",
    "From a WARP -> HubSpot job's creation to its successful write.",
    buckets=LATENCY_BUCKETS,
)
EVENT_TO_WARP = prometheus_client.Histogram(
    "hubsync_event_to_warp_seconds",
    "From a HubSpot webhook's arrival (its job's creation) to WARP written.",
    buckets=LATENCY_BUCKETS,
)
WEBHOOK_DELIVERIES = prometheus_client.Counter(
    "hubsync_webhook_deliveries",
    "HubSpot webhook deliveries by outcome (accepted, invalid, unauthorized, timeout, "
    "too_large, unavailable, error).",
    ["outcome"],
)
WEBHOOK_EVENTS = prometheus_client.Counter(
    "hubsync_webhook_events",
    "Events of accepted deliveries by outcome (duplicate, queued, ignored, processed).",
    ["outcome"],
)
CATCHUP_CUT_SHORT = prometheus_client.Counter(
    "hubsync_catchup_windows_cut_short",
    "Catch-up search windows that held more results than one search returns and were too "
    "narrow to split: what was returned was queued, the rest waits for the daily run.",
)
HUBSPOT_REQUESTS = prometheus_client.Counter(
    "hubsync_hubspot_requests",
    "Requests to HubSpot by operation and HTTP status (`transport_error`: no answer).",
    ["operation", "status"],
)
HUBSPOT_REQUEST_SECONDS = prometheus_client.Histogram(
    "hubsync_hubspot_request_seconds",
    "HubSpot request duration by operation (answered requests).",
    ["operation"],
    buckets=REQUEST_BUCKETS,
)
HUBSPOT_RATE_LIMITED = prometheus_client.Counter(
    "hubsync_hubspot_rate_limited",
    "HubSpot answers 429 (rate limited), by operation.",
    ["operation"],
)

_DELIVERY_OUTCOMES = {
    200: "accepted",
    400: "invalid",
    401: "unauthorized",
    408: "timeout",
    413: "too_large",
    503: "unavailable",
}
# The webhook route's children resolved once: `.labels()` takes a lock and builds a key on
# every call, and this is the intake's hot path (thousands of deliveries a second).
_DELIVERIES = {
    status: WEBHOOK_DELIVERIES.labels(name) for status, name in _DELIVERY_OUTCOMES.items()
}
_DELIVERY_ERROR = WEBHOOK_DELIVERIES.labels("error")
_EVENTS = {
    name: WEBHOOK_EVENTS.labels(name) for name in ("duplicate", "queued", "ignored", "processed")
}


def observe_hubspot_request(operation: str, status: int | None, seconds: float) -> None:
    """One HubSpot request answered with `status` (None: it got no answer)."""
    HUBSPOT_REQUESTS.labels(operation, "transport_error" if status is None else str(status)).inc()
    if status is None:
        return
    HUBSPOT_REQUEST_SECONDS.labels(operation).observe(seconds)
    if status == 429:
        HUBSPOT_RATE_LIMITED.labels(operation).inc()


@dataclass(frozen=True)
class FinishedJob:
    """A job attempt as the queue recorded its end: `outcome` is done, retry (back to the
    queue) or failed (for good, a retry past the maximum age included)."""

    direction: str
    source: str
    created_at: datetime
    outcome: str


def observe_finished(jobs: Sequence[FinishedJob], now: datetime) -> None:
    """Job attempts the queue just recorded as finished, whoever ran them (the worker, a
    sync-now request, a conflict's resolution): counted once, where the queue records them,
    so no path that finishes a job can leave it out. Latency for the jobs done."""
    finished: Counter[tuple[str, str]] = Counter()  # one increment per label set, not per job
    for job in jobs:
        finished[job.direction, job.outcome] += 1
        if job.outcome != OutcomeStatus.DONE.value:
            continue
        waited = max(0.0, (now - job.created_at).total_seconds())
        if job.direction == JobDirection.TO_HUBSPOT.value:
            QUEUE_TO_HUBSPOT.observe(waited)
        elif job.source == JobSource.WEBHOOK.value:
            EVENT_TO_WARP.observe(waited)
    for (direction, outcome), count in finished.items():
        JOBS_FINISHED.labels(direction, outcome).inc(count)


def observe_webhook_delivery(status: int) -> None:
    _DELIVERIES.get(status, _DELIVERY_ERROR).inc()


def observe_webhook_events(duplicates: int, queued: int, ignored: int, processed: int) -> None:
    if duplicates:
        _EVENTS["duplicate"].inc(duplicates)
    if queued:
        _EVENTS["queued"].inc(queued)
    if ignored:
        _EVENTS["ignored"].inc(ignored)
    if processed:
        _EVENTS["processed"].inc(processed)


def hubspot_totals() -> tuple[int, int]:
    """HubSpot requests made and 429s answered to this process so far (every operation and
    status): the sampler's per-minute figures take the difference between two readings."""
    return _counter_total(HUBSPOT_REQUESTS), _counter_total(HUBSPOT_RATE_LIMITED)


def _counter_total(counter: prometheus_client.Counter) -> int:
    return int(
        sum(
            sample.value
            for metric in counter.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
    )
