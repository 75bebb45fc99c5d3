"""One hubsync-like process that calls HubSpot as fast as its rate limiter lets it.

Run several at once against one sandbox and one PostgreSQL database to check that the limit
holds for the deployment, not per process:

    HUBSYNC_DATABASE_URL=postgresql+asyncpg://... HUBSPOT_BASE_URL=http://127.0.0.1:8090 \\
    HUBSPOT_ACCESS_TOKEN=pat-test python -m tests.integration.ratelimit_hammer \\
        --start-at <epoch seconds> --seconds 30 --concurrency 10

Prints one JSON line: how many calls succeeded, were rate limited, or failed otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter

from app.hubspot.client import HubSpotClient
from app.hubspot.errors import HubSpotError, HubSpotRateLimitError
from app.hubspot.ratelimit import Grant, PostgresRateLimiter, WrappedLimiter
from app.settings import Settings
from app.store.db import create_engine


class TimeUpError(Exception):
    """Raised by the limiter once the run is over, so no request starts late."""


class DeadlineLimiter(WrappedLimiter):
    """The real limiter, refusing to grant past the end of the run."""

    def __init__(self, limiter: PostgresRateLimiter, deadline: float) -> None:
        super().__init__(limiter)
        self.deadline = deadline

    async def acquire(self) -> Grant:
        grant = await self.inner.acquire()
        if time.time() >= self.deadline:
            raise TimeUpError
        return grant


async def hammer(start_at: float, seconds: float, concurrency: int) -> Counter[str]:
    settings = Settings.from_env(env_file=None)
    engine = create_engine(settings.database_url.reveal(), pool_size=2)
    limiter = DeadlineLimiter(
        PostgresRateLimiter(engine, settings.hubspot_rate_limit), start_at + seconds
    )
    outcomes: Counter[str] = Counter()
    try:
        async with engine.connect():  # open a connection before the clock starts
            pass
        async with HubSpotClient.from_settings(settings, limiter=limiter) as client:
            await asyncio.sleep(max(0.0, start_at - time.time()))

            async def worker() -> None:
                while True:
                    try:
                        # An empty portal: one list request per call, answered 200.
                        async for _ in client.iter_companies(["name"]):
                            pass
                        outcomes["ok"] += 1
                    except TimeUpError:
                        return
                    except HubSpotRateLimitError:
                        outcomes["rate_limited"] += 1
                    except HubSpotError as exc:
                        outcomes[f"error {exc.status}"] += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await engine.dispose()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start-at", type=float, required=True)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    outcomes = asyncio.run(hammer(args.start_at, args.seconds, args.concurrency))
    sys.stdout.write(json.dumps(dict(outcomes)) + "\n")


if __name__ == "__main__":
    main()
