"""The HubSpot client over a real socket (the sandbox served by uvicorn on loopback): what
only the real transport does, which an in-process ASGI transport or respx never runs."""

from __future__ import annotations

import builtins
import sys
from collections.abc import Iterator
from importlib.util import resolve_name
from typing import Any

import pytest

from app.hubspot.client import HubSpotClient
from app.hubspot.models import UpsertInput
from app.hubspot.properties import ensure_properties
from app.hubspot.ratelimit import LocalRateLimiter
from app.sandbox.config import SandboxConfig
from app.settings import RateLimit, Secret
from tests.sandbox_server import ServedSandbox, served_sandbox

TOKEN = "pat-sandbox-wire-test-1234"


@pytest.fixture
def sandbox() -> Iterator[ServedSandbox]:
    with served_sandbox(SandboxConfig(access_token=TOKEN)) as served:
        yield served


def client_for(sandbox: ServedSandbox) -> HubSpotClient:
    return HubSpotClient(
        base_url=sandbox.url,
        access_token=Secret(TOKEN),
        limiter=LocalRateLimiter(RateLimit(100, 10.0)),
        max_retries=0,
    )


async def test_a_request_imports_nothing_once_the_first_has_run(
    sandbox: ServedSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpcore asks which async library runs it (`import sniffio`) on every response it
    closes and every lock it makes. Without the package, each of those imports fails and
    searches every directory of sys.path again: four per request, ~60 µs of CPU each (1 % of
    the worker's CPU in py-spy) — so hubsync depends on it."""
    companies = [UpsertInput(f"ZT-{n:09d}", {"name": f"Customer {n}"}) for n in range(3)]
    async with client_for(sandbox) as client:
        await ensure_properties(client)
        await client.batch_upsert_companies(companies)  # the first: imports are allowed
        searched: list[str] = []
        real_import = builtins.__import__

        def spy(
            name: str,
            globals: dict[str, Any] | None = None,
            locals: Any = None,
            fromlist: Any = (),
            level: int = 0,
        ) -> Any:
            package = (globals or {}).get("__package__") or ""
            absolute = resolve_name("." * level + name, package) if level else name
            if absolute not in sys.modules:
                searched.append(absolute)
            return real_import(name, globals, locals, fromlist, level)

        monkeypatch.setattr(builtins, "__import__", spy)
        result = await client.batch_upsert_companies(companies)
        monkeypatch.undo()
    assert [o.error for o in result.outcomes] == [None, None, None]
    assert searched == []
