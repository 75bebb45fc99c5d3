"""Webhook delivery the way HubSpot does it: batched, signed, retried, not always in order.

Changes become events at once; a background task posts them as a JSON array (at most
`webhook_batch_size` per request, after a short batch window) signed with v1 and v3. A failed
or timed-out request is retried with growing delays and an incremented `attemptNumber`, up to
`webhook_max_attempts`. Faults can duplicate events or shuffle a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field

import httpx

from app.hubspot.signatures import sign_v1, sign_v3
from app.sandbox.clock import iso_from_ms, now_ms
from app.sandbox.config import SandboxConfig
from app.sandbox.errors import JsonDict
from app.sandbox.faults import FaultInjector
from app.sandbox.store import ChangeEvent

_FIXED_SUBSCRIPTIONS = {"creation": 1, "deletion": 2, "restore": 3, "merge": 4}


@dataclass
class Batch:
    events: list[JsonDict]
    attempt: int = 0
    due: float = 0.0  # time.monotonic()


@dataclass
class DeliveryRecord:
    at_ms: int
    attempt: int
    event_ids: list[int]
    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_json(self) -> JsonDict:
        return {
            "at": iso_from_ms(self.at_ms),
            "attemptNumber": self.attempt,
            "events": len(self.event_ids),
            "eventIds": self.event_ids,
            "status": self.status,
            "error": self.error,
            "ok": self.ok,
        }


@dataclass
class DeliveryCounts:
    batches_delivered: int = 0
    events_delivered: int = 0
    attempts_failed: int = 0
    batches_abandoned: int = 0
    events_dropped: int = 0  # produced while no webhook URL was set, or dropped by a fault


@dataclass
class WebhookDispatcher:
    config: SandboxConfig
    faults: FaultInjector
    events: deque[JsonDict] = field(default_factory=lambda: deque(maxlen=10_000))
    deliveries: deque[DeliveryRecord] = field(default_factory=lambda: deque(maxlen=1_000))
    counts: DeliveryCounts = field(default_factory=DeliveryCounts)

    def __post_init__(self) -> None:
        self._pending: list[JsonDict] = []
        self._pending_since: float | None = None
        self._retries: list[Batch] = []
        self._subscriptions: dict[str, int] = {}
        self._next_event_id = 1
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    # -- producing -----------------------------------------------------------------------

    def publish(self, change: ChangeEvent) -> None:
        event = self._payload(change)
        self.events.append(event)
        if not self.config.webhook_url or self.faults.drop():
            self.counts.events_dropped += 1
            return
        copies = 2 if self.faults.duplicate() else 1
        for _ in range(copies):
            self._pending.append(dict(event))
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        self._wake.set()

    def _payload(self, change: ChangeEvent) -> JsonDict:
        subscription = f"company.{change.kind}"
        key = subscription + (f":{change.property_name}" if change.property_name else "")
        if key not in self._subscriptions:
            fixed = _FIXED_SUBSCRIPTIONS.get(change.kind)
            self._subscriptions[key] = fixed or 100 + len(self._subscriptions)
        app_id = self.config.app_id
        event: JsonDict = {
            "eventId": self._next_event_id,
            "subscriptionId": self._subscriptions[key],
            "portalId": self.config.portal_id,
            "appId": int(app_id) if app_id.isdigit() else app_id,
            "occurredAt": change.occurred_ms,
            "subscriptionType": subscription,
            "attemptNumber": 0,
            "objectId": int(change.object_id),
            "changeSource": change.source.source_type,
            "sourceId": change.source.source_id,
        }
        self._next_event_id += 1
        if change.property_name is not None:
            event["propertyName"] = change.property_name
            event["propertyValue"] = change.property_value
        event.update(change.extra)
        return event

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def retrying(self) -> int:
        return len(self._retries)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sandbox-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def reconfigure(self, config: SandboxConfig) -> None:
        """Use a new target or transport from the next delivery on."""
        async with self._lock:
            self.config = config
            if self._client is not None:
                await self._client.aclose()
                self._client = None

    def clear(self) -> None:
        self._pending.clear()
        self._pending_since = None
        self._retries.clear()
        self.events.clear()
        self.deliveries.clear()
        self.counts = DeliveryCounts()

    async def flush(self) -> int:
        """Deliver everything pending or awaiting retry now; the number of batches accepted."""
        return await self._deliver(force=True)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            wait = self._next_wakeup()
            if wait is None or wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            await self._deliver(force=False)

    def _next_wakeup(self) -> float | None:
        now = time.monotonic()
        moments = [b.due for b in self._retries]
        if self._pending:
            if len(self._pending) >= self.config.webhook_batch_size:
                return 0.0
            assert self._pending_since is not None  # noqa: S101 - set whenever pending is
            moments.append(self._pending_since + self.config.webhook_delay_seconds)
        return max(min(moments) - now, 0.0) if moments else None

    # -- delivering ----------------------------------------------------------------------

    async def _deliver(self, *, force: bool) -> int:
        async with self._lock:
            now = time.monotonic()
            batches: list[Batch] = []
            window_over = (
                self._pending_since is not None
                and now >= self._pending_since + self.config.webhook_delay_seconds
            )
            size = self.config.webhook_batch_size
            while self._pending and (force or window_over or len(self._pending) >= size):
                chunk, self._pending = self._pending[:size], self._pending[size:]
                if self.faults.faults.reorder_webhooks:
                    self.faults.rng.shuffle(chunk)
                batches.append(Batch(chunk))
            if not self._pending:
                self._pending_since = None
            waiting: list[Batch] = []
            for batch in self._retries:
                (batches if force or batch.due <= now else waiting).append(batch)
            self._retries = waiting
            if not batches:
                return 0
            limit = asyncio.Semaphore(self.config.webhook_concurrency)

            async def send(batch: Batch) -> bool:
                async with limit:
                    return await self._send(batch)

            outcomes = await asyncio.gather(*(send(b) for b in batches))
            return sum(outcomes)

    async def _send(self, batch: Batch) -> bool:
        url = self.config.webhook_url
        if not url:
            self.counts.events_dropped += len(batch.events)
            return False
        events = [{**e, "attemptNumber": batch.attempt} for e in batch.events]
        body = json.dumps(events, separators=(",", ":")).encode("utf-8")
        timestamp = str(now_ms())
        secret = self.config.client_secret
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/) (sandbox)",
            "X-HubSpot-Signature": sign_v1(secret, body),
            "X-HubSpot-Signature-Version": "v1",
            "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, timestamp),
            "X-HubSpot-Request-Timestamp": timestamp,
        }
        record = DeliveryRecord(now_ms(), batch.attempt, [e["eventId"] for e in events], None)
        try:
            response = await self._http().post(url, content=body, headers=headers)
            record.status = response.status_code
        except httpx.HTTPError as exc:
            record.error = f"{type(exc).__name__}: {exc}"
        self.deliveries.append(record)
        if record.ok:
            self.counts.batches_delivered += 1
            self.counts.events_delivered += len(events)
            return True
        self.counts.attempts_failed += 1
        batch.attempt += 1
        if batch.attempt >= self.config.webhook_max_attempts:
            self.counts.batches_abandoned += 1
            return False
        delay = self.config.webhook_retry_base_seconds * 2 ** (batch.attempt - 1)
        batch.due = time.monotonic() + min(delay, self.config.webhook_retry_max_seconds)
        self._retries.append(batch)
        self._wake.set()
        return False

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self.config.webhook_transport,
                timeout=self.config.webhook_timeout_seconds,
            )
        return self._client
