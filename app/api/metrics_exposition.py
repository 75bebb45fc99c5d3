"""The text served at `/metrics`: the counters and histograms of every process of this pod
(summed from PROMETHEUS_MULTIPROC_DIR under several uvicorn workers), then gauges built from a
database snapshot read for this scrape."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.settings import RateLimit, Settings
from app.store.models import GENERAL_BUCKET, SEARCH_BUCKET
from app.store.operations import DIRECTIONS, LIVE_STATES, OperationsSnapshot

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


def rate_limits_of(settings: Settings) -> dict[str, RateLimit]:
    """The configured limit of each rate-limit bucket, by the bucket's name in the log."""
    return {
        GENERAL_BUCKET: settings.hubspot_rate_limit,
        SEARCH_BUCKET: settings.hubspot_search_rate_limit,
    }


def counters_registry() -> CollectorRegistry:
    """This process's registry, or (multiprocess mode) one that sums every process's files."""
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]  # unannotated upstream
    return registry


class SnapshotCollector(Collector):
    """Gauges from one database snapshot; only `hubsync_database_up 0` when there is none."""

    def __init__(self, snapshot: OperationsSnapshot | None) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        up = GaugeMetricFamily(
            "hubsync_database_up", "1 when the scrape could read hubsync's database."
        )
        up.add_metric([], 0 if snapshot is None else 1)
        yield up
        if snapshot is None:
            return
        queue = GaugeMetricFamily(
            "hubsync_queue_jobs",
            "Jobs in the sync queue by state (pending, running, failed) and direction.",
            labels=["state", "direction"],
        )
        for state in LIVE_STATES:
            for direction in DIRECTIONS:
                queue.add_metric([state, direction], snapshot.queue.get((state, direction), 0))
        yield queue
        yield _gauge(
            "hubsync_queue_oldest_waiting_seconds",
            "Age of the oldest pending job that is due (0 when none waits).",
            snapshot.oldest_waiting_seconds,
        )
        yield _gauge(
            "hubsync_conflicts_open", "Conflicts left for a person.", snapshot.open_conflicts
        )
        yield _gauge(
            "hubsync_webhook_events_failed",
            "Stored webhook events whose processing failed (re-runnable).",
            snapshot.failed_webhook_events,
        )
        limit = GaugeMetricFamily(
            "hubsync_rate_limit_requests",
            "HubSpot requests allowed per window (HUBSPOT_RATE_LIMIT, search apart).",
            labels=["bucket"],
        )
        used = GaugeMetricFamily(
            "hubsync_rate_limit_used",
            "HubSpot requests counted in the current window, whole deployment (PostgreSQL).",
            labels=["bucket"],
        )
        headroom = GaugeMetricFamily(
            "hubsync_rate_limit_headroom",
            "HubSpot requests still allowed in the current window (PostgreSQL).",
            labels=["bucket"],
        )
        paused = GaugeMetricFamily(
            "hubsync_rate_limit_paused_seconds",
            "Seconds left of a deployment-wide pause after a 429 (0: not paused).",
            labels=["bucket"],
        )
        for use in snapshot.rate_limits:
            limit.add_metric([use.bucket], use.limit)
            if use.in_window is not None and use.headroom is not None:
                used.add_metric([use.bucket], use.in_window)
                headroom.add_metric([use.bucket], use.headroom)
            paused.add_metric([use.bucket], use.paused_for_seconds)
        yield from (limit, used, headroom, paused)
        yield from _reconciliation(snapshot)
        yield from _scheduled_jobs(snapshot)


def _reconciliation(snapshot: OperationsSnapshot) -> Iterator[Metric]:
    last = snapshot.last_successful_reconciliation
    finished = last.finished_at.timestamp() if last and last.finished_at else 0.0
    yield _gauge(
        "hubsync_reconciliation_last_success_timestamp_seconds",
        "When the newest reconciliation that finished without an error finished (0: never).",
        finished,
    )
    found = GaugeMetricFamily(
        "hubsync_reconciliation_last_success_items",
        "What that reconciliation found, by category (e.g. drift, missing_in_hubspot).",
        labels=["category"],
    )
    for category, count in sorted((last.counts if last else {}).items()):
        if isinstance(count, int | float):
            found.add_metric([str(category)], count)
    yield found


def _scheduled_jobs(snapshot: OperationsSnapshot) -> Iterator[Metric]:
    success = GaugeMetricFamily(
        "hubsync_scheduled_job_last_success_timestamp_seconds",
        "When a scheduled job last succeeded on any replica (0: never).",
        labels=["job"],
    )
    late = GaugeMetricFamily(
        "hubsync_scheduled_job_late",
        "1 when a scheduled job has not succeeded within twice its period.",
        labels=["job"],
    )
    for job in snapshot.scheduled_jobs:
        last = job.last_success_at
        success.add_metric([job.job], last.timestamp() if last is not None else 0.0)
        late.add_metric([job.job], 1 if job.late else 0)
    yield from (success, late)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def render_metrics(snapshot: OperationsSnapshot | None) -> bytes:
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(SnapshotCollector(snapshot))
    return generate_latest(counters_registry()) + generate_latest(gauges)
