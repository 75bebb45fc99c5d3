"""The reconciliation's records on each backend: one running run, takeover of a silent one,
a checkpoint only its owner can write, retention; the share cap on the shared limiter."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import update

from app.cli.reconcile_run import _claim
from app.hubspot.ratelimit import create_rate_limiter
from app.hubspot.ratelimit_share import ShareCappedLimiter
from app.settings import RateLimit
from app.store import reconciliation as runs
from app.store.reconciliation import RUNS, Checkpoint, LostRunError
from app.sync.reconcile.service import Reconciler
from tests.conftest import Database


async def test_one_running_run_and_a_silent_one_is_taken_over(db: Database) -> None:
    first = await runs.start_run(db.engine, mode="fix", trigger="api", owner="a", lease_seconds=0.2)
    assert first is not None
    assert (
        await runs.start_run(db.engine, mode="fix", trigger="api", owner="b", lease_seconds=1)
        is None
    )
    assert await runs.take_over_dead_run(db.engine, "b", 30) is None  # a still holds it
    await asyncio.sleep(0.4)
    taken = await runs.take_over_dead_run(db.engine, "b", 30)
    assert taken is not None
    assert (taken.id, taken.claimed_by, taken.resumed) == (first.id, "b", 1)
    checkpoint = Checkpoint("warp", None, "c-1", {"drift": 2}, 3, 0)
    async with db.engine.begin() as connection:  # the old owner wakes up: refused
        with pytest.raises(LostRunError):
            await runs.save_checkpoint(connection, first.id, "a", checkpoint, 30)
    async with db.engine.begin() as connection:
        await runs.save_checkpoint(connection, first.id, "b", checkpoint, 30)
    assert not await runs.renew_lease(db.engine, first.id, "a", 30)
    done = await runs.finish_run(db.engine, first.id, "b", status="done", report={})
    assert done is not None
    assert (done.status, done.counts, done.warp_after) == ("done", {"drift": 2}, "c-1")


async def test_old_reports_are_pruned(db: Database) -> None:
    old = await runs.start_run(db.engine, mode="fix", trigger="api", owner="a", lease_seconds=9)
    assert old is not None
    async with db.engine.begin() as connection:
        await runs.add_items(connection, old.id, [{"category": "drift", "detail": "x"}])
    await runs.finish_run(db.engine, old.id, "a", status="done")
    async with db.engine.begin() as connection:
        await connection.execute(
            update(RUNS)
            .where(RUNS.c.id == old.id)
            .values(started_at=RUNS.c.started_at - timedelta(days=40))
        )
    recent = await runs.start_run(db.engine, mode="fix", trigger="api", owner="a", lease_seconds=9)
    assert recent is not None
    assert await runs.prune_runs(db.engine, timedelta(days=30)) == 1
    async with db.engine.connect() as connection:
        assert await runs.get_run(connection, old.id) is None
        assert await runs.items_page(connection, old.id) == []
        assert await runs.get_run(connection, recent.id) is not None  # running: kept


async def test_a_capped_share_of_the_deployment_wide_window(db: Database) -> None:
    limit = RateLimit(8, 0.6)
    shared = create_rate_limiter(db.engine, limit, bucket="reconcile-test", margin_seconds=0)
    capped = ShareCappedLimiter(shared, 0.5, limit.requests)  # type: ignore[arg-type]
    for _ in range(4):
        await capped.acquire()
    blocked = asyncio.create_task(capped.acquire())
    await asyncio.sleep(0.1)
    assert not blocked.done()
    started = time.monotonic()
    for _ in range(4):
        await shared.acquire()
    assert time.monotonic() - started < 0.5  # the other half is live traffic's at once
    await asyncio.wait_for(blocked, timeout=5)


async def test_cli_dry_run_does_not_take_over_a_dead_fix_run(db: Database) -> None:
    """`hubsync reconcile --dry-run` promises to write nothing: a fix run whose process died is
    left to a process asked for fix (the service's takeover), never carried on under it."""
    dead = await runs.start_run(db.engine, mode="fix", trigger="api", owner="a", lease_seconds=0)
    assert dead is not None
    await asyncio.sleep(0.3)
    nothing = cast(Any, None)  # `_claim` reaches neither side nor the queue
    cli = Reconciler(engine=db.engine, warp=nothing, hubspot=nothing, queue=nothing, owner="cli")
    err = io.StringIO()
    assert await _claim(cli, dry_run=True, err=err) is None
    assert "in progress" in err.getvalue()
    async with db.engine.connect() as connection:
        still = await runs.get_run(connection, dead.id)
    assert still is not None
    assert (still.claimed_by, still.resumed) == ("a", 0)
    # Asked for the run's own mode, the CLI resumes it from its checkpoint.
    resumed = await _claim(cli, dry_run=False, err=err)
    assert resumed is not None
    assert (resumed.id, resumed.mode, resumed.claimed_by) == (dead.id, "fix", "cli")
