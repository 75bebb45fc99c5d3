"""hubsync's HubSpot properties, made sure of until they are: the start-up bootstrap, retried.

At start `PropertyBootstrap.first_attempt` runs `ensure_properties` once, as before. If that
fails — a 429 or 5xx at the wrong moment, HubSpot unreachable, a property in a shape only a
person can fix — a background task tries again with exponential backoff (1 s doubling to one
minute, ±10 % jitter) until it succeeds. Meanwhile `ready` is False, `/readyz` answers 503
with "HubSpot properties not ready: <why>", and jobs wait for it (`app.sync.worker.gate`) rather
than fail for good with PROPERTY_DOESNT_EXIST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from app.hubspot.client import HubSpotClient
from app.hubspot.errors import HubSpotError
from app.hubspot.properties import PropertySchemaError, ensure_properties

log = logging.getLogger("hubsync.hubspot")

NOT_READY = "HubSpot properties not ready"


class PropertyBootstrap:
    def __init__(
        self, client: HubSpotClient, *, base_delay: float = 1.0, max_delay: float = 60.0
    ) -> None:
        self.client = client
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.attempts = 0
        self.problem: str | None = "not checked yet"
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def reason(self) -> str:
        """Why jobs wait, for /readyz and the jobs' last_error."""
        return f"{NOT_READY}: {self.problem}" if not self.ready else "ok"

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 -- a bounded wait, by design
        """Until ready or `timeout` seconds; whether it is ready."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        return self.ready

    async def attempt(self) -> bool:
        self.attempts += 1
        try:
            report = await ensure_properties(self.client)
        except PropertySchemaError as exc:
            # A person must fix HubSpot; the message says what. Tried again in case they do.
            self.problem = str(exc)
        except HubSpotError as exc:
            self.problem = f"HubSpot answered {exc}"
        except Exception as exc:  # noqa: BLE001 -- e.g. the rate limiter's table not migrated yet
            self.problem = f"{type(exc).__name__}: {exc}"
        else:
            for note in report.notes:
                log.info("HubSpot property note: %s", note)
            self.problem = None
            self._ready.set()
            if self.attempts > 1:
                log.info("HubSpot properties ready after %d attempts", self.attempts)
            return True
        log.error("%s (attempt %d): %s", NOT_READY, self.attempts, self.problem)
        return False

    async def first_attempt(self) -> None:
        """Try once now; on failure keep trying in the background."""
        if not await self.attempt():
            self._task = asyncio.create_task(self._retry(), name="hubsync-property-bootstrap")

    async def _retry(self) -> None:
        failures = 1
        while not self.ready:
            delay = min(self.base_delay * 2 ** (failures - 1), self.max_delay)
            await asyncio.sleep(delay * random.uniform(0.9, 1.1))  # noqa: S311 - jitter
            if not await self.attempt():
                failures += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
