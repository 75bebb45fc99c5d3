"""What `hubsync reconcile` does (imported only when it runs): one full reconciliation from
the command line, with progress on stderr and a summary on stdout.

A run whose process died (or that Ctrl-C interrupted: its lease is released then) is resumed
here first (from its checkpoint); otherwise a new run starts, unless one is running elsewhere
(exit 3). `fix` queues its jobs: a running hubsync service's workers carry them out.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import time
from pathlib import Path
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from app.hubspot.connection import open_hubspot
from app.sandbox.embedded import build_sandbox_app
from app.settings import Settings
from app.store import reconciliation as runs
from app.store.db import create_engine
from app.store.queue import QueueRepository
from app.store.reconciliation import RunRecord
from app.sync.reconcile.categories import Category
from app.sync.reconcile.full_run import DRY_RUN, FIX, Progress
from app.sync.reconcile.report import csv_text
from app.sync.reconcile.service import Reconciler
from app.warp.connector import SqlWarpConnector

EXIT_BUSY = 3
EXIT_INTERRUPTED = 130  # the shell's code for a command ended by SIGINT


class ProgressPrinter:
    """A line at most every `every` seconds, and at each change of phase."""

    def __init__(self, stream: TextIO, every: float = 1.0) -> None:
        self.stream = stream
        self.every = every
        self._last = 0.0
        self._phase = ""

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.phase == self._phase and now - self._last < self.every:
            return
        self._last, self._phase = now, progress.phase
        found = ", ".join(f"{name} {n}" for name, n in sorted(progress.counts.items()) if n)
        print(
            f"run {progress.run_id}: {progress.phase} pass, page {progress.pages}, "
            f"{progress.hubspot_calls} HubSpot call(s), {progress.jobs_created} job(s) — "
            f"{found or 'nothing yet'}",
            file=self.stream,
            flush=True,
        )


async def reconcile(
    settings: Settings,
    *,
    dry_run: bool,
    report: Path | None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    engine = create_engine(settings.database_url.reveal())
    warp_url = settings.effective_warp_database_url
    warp_engine = engine if warp_url == settings.database_url else create_engine(warp_url.reveal())
    if settings.sandbox_mode:
        print(
            "hubsync reconcile: no HUBSPOT_ACCESS_TOKEN, so HubSpot is an empty in-process "
            "sandbox; set HUBSPOT_ACCESS_TOKEN and HUBSPOT_BASE_URL to compare with a real one",
            file=err,
        )
    sandbox_app = build_sandbox_app(settings, None) if settings.sandbox_mode else None
    try:
        async with open_hubspot(
            settings, engine, sandbox_app=sandbox_app, webhook_receiver=None
        ) as hubspot:
            reconciler = Reconciler(
                engine=engine,
                warp=SqlWarpConnector(warp_engine, settings.effective_customers_table),
                hubspot=hubspot.reconcile_client or hubspot.client,
                queue=QueueRepository(engine),
                lease_seconds=settings.reconcile_lease_seconds,
            )
            record = await _claim(reconciler, dry_run, err)
            if record is None:
                return EXIT_BUSY
            try:
                finished = await reconciler.full_run(ProgressPrinter(err)).execute(record)
            except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this task
                return await _interrupted(reconciler, record, err)
            if finished is None:
                print(f"run {record.id} was taken over by another process", file=err)
                return 1
            _summary(finished, out)
            if report is not None:
                await _write_report(engine, finished, report)
                print(f"report: {report}", file=out)
            return 0 if finished.status == runs.DONE else 1
    finally:
        if warp_engine is not engine:
            await warp_engine.dispose()
        await engine.dispose()


async def _interrupted(reconciler: Reconciler, record: RunRecord, err: TextIO) -> int:
    """Stopped by Ctrl-C (SIGINT) mid-run: the run keeps its checkpoint and its lease lapses
    now, so the next `hubsync reconcile` resumes it at once instead of being refused (exit
    3) until the lease runs out; one line says so, not a traceback."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()  # handled here: the command ends normally, with its own exit code
    await runs.release_run(reconciler.engine, record.id, reconciler.owner)
    print(f"interrupted; run {record.id} can be resumed", file=err, flush=True)
    return EXIT_INTERRUPTED


async def _claim(reconciler: Reconciler, dry_run: bool, err: TextIO) -> RunRecord | None:
    mode = DRY_RUN if dry_run else FIX
    # Only a dead run of the mode asked for: `--dry-run` must never carry on a fix run.
    dead = await runs.take_over_dead_run(
        reconciler.engine, reconciler.owner, reconciler.lease_seconds, mode=mode
    )
    if dead is not None:
        print(
            f"resuming run {dead.id} ({dead.mode}), left by a process that stopped, "
            f"from its checkpoint ({dead.phase} pass)",
            file=err,
        )
        return dead
    record = await reconciler.claim_new(mode, "cli", requested_by=_user())
    if record is None:
        async with reconciler.engine.connect() as connection:
            running = await runs.running_run(connection)
        where = f"run {running.id} by {running.claimed_by}" if running else "another run"
        print(f"hubsync reconcile: {where} is in progress; one runs at a time", file=err)
        return None
    print(f"run {record.id} ({record.mode}) started", file=err)
    return record


def _summary(run: RunRecord, out: TextIO) -> None:
    print(f"reconciliation run {run.id} ({run.mode}): {run.status}", file=out)
    for category in Category:
        print(f"  {category:<20} {run.counts.get(category, 0):>9,}", file=out)
    print(f"  HubSpot calls        {run.hubspot_calls:>9,}", file=out)
    print(f"  jobs queued          {run.jobs_created:>9,}", file=out)
    if run.error:
        print(f"  error: {run.error}", file=out)


async def _write_report(engine: AsyncEngine, run: RunRecord, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        async for text in csv_text(run.id, runs.iter_items(engine, run.id)):
            handle.write(text)


def _user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"
