"""Benchmark: the instructions one sync batch costs, counted rather than timed.

On the shared 2-vCPU VMs this project is measured on, one tree's CPU per batch spreads by
±20 % between runs of a sitting and by more between sittings (bench/README.md, "Ninth
pass"): more than most single changes save. A count of the instructions executed does not
move with the neighbours. This runs `--batches` WARP-only (or two-way) batches of 100
customers in one process, each the worker's own three calls: the claim, the engine
(`SyncEngine`, against the built-in sandbox in process: no latency, no HTTP socket; the
HubSpot rate limit in PostgreSQL, as `hubsync serve` has it) and the completion; under
valgrind's callgrind, counting only those calls (instrumentation is off for the set-up, the
imports and the changes between batches, and switched on and off around each batch through
callgrind's client requests, a ten-line C shim compiled on the spot). The process tunes its
garbage collector as `hubsync serve` does. Counted: hubsync's instructions and the in-process
sandbox's (the same code on both sides of an A/B), not PostgreSQL's.

    .venv/bin/python -m bench.instructions [--mode warp-only|two-way] [--batches 5]
        [--runs 3] [--hubsync-root PATH]

`--hubsync-root`: count another checkout's code (an A/B against a commit: `git worktree
add`). Needs valgrind and a C compiler (Debian: `apt-get install valgrind gcc`), and
PostgreSQL as the other benchmarks find it (HUBSYNC_BENCH_POSTGRES_URL). Under callgrind a
batch runs about 50 times slower: a run of 5 batches takes about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from bench.outbound import database, libpq, machine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = 100
WARM_UP = 3  # batches run before counting: pools filled, statements prepared, caches warm
_SHIM = """
#include <valgrind/callgrind.h>
void counted(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void uncounted(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_STOP_INSTRUMENTATION; }
"""


def compile_shim(directory: Path) -> Path:
    source, library = directory / "shim.c", directory / "libshim.so"
    source.write_text(_SHIM)
    subprocess.run(  # noqa: S603
        ["gcc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)],  # noqa: S607
        check=True,
    )
    return library


def count(args: argparse.Namespace, shim: Path, out: Path, url: str) -> int:
    """Instructions per counted batch, from one run under callgrind."""
    mode, batches, root = args.mode, args.batches, args.hubsync_root
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--collect-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--mode",
        mode,
        "--batches",
        str(batches),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "PYTHONHASHSEED": "0",
        "HUBSYNC_INSTRUCTIONS_SHIM": str(shim),
        "HUBSYNC_INSTRUCTIONS_URL": url,
    }
    done = subprocess.run(  # noqa: S603
        command, env=env, cwd=root, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the counted run failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
    return int(totals[-1].split()[1]) // batches


async def prepare(engine: AsyncEngine) -> list[str]:
    """The database migrated, WARP's customers table with 100 customers; their ids."""
    from app.store.migrate import upgrade  # noqa: PLC0415 -- the child's `app`: --hubsync-root
    from app.warp.schema import customers_table  # noqa: PLC0415

    await upgrade(engine)
    table = customers_table("accounts.customers")
    ids = [str(uuid.UUID(int=number)) for number in range(1, CUSTOMERS + 1)]
    async with engine.begin() as connection:
        await connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS accounts")
        await connection.run_sync(table.create)
        for number, customer_id in enumerate(ids, start=1):
            await connection.execute(
                table.insert().values(
                    id=customer_id,
                    ban=f"ZT-{100000000 + number}",
                    company_name=f"Customer {number} Ltd",
                    customer_type="POSTPAID",
                    status="ACTIVE",
                    credit_limit=Decimal(1000),
                    current_balance=Decimal("12.50"),
                    contact={"email": f"billing@customer{number}.example"},
                    services={"voice": {"enabled": True}, "data": {"enabled": True}},
                    external_ids={},
                )
            )
    return ids


async def child(mode: str, batches: int) -> None:
    """The counted process: a migrated database, 100 customers synced once, then batches."""
    from app.cli.serve import tune_garbage_collector  # noqa: PLC0415 -- from --hubsync-root
    from app.hubspot.client import HubSpotClient  # noqa: PLC0415
    from app.hubspot.properties import ensure_properties  # noqa: PLC0415
    from app.hubspot.ratelimit import PostgresRateLimiter  # noqa: PLC0415
    from app.sandbox.config import SandboxConfig  # noqa: PLC0415
    from app.sandbox.testing import SANDBOX_BASE_URL, TEST_TOKEN, running_sandbox  # noqa: PLC0415
    from app.settings import RateLimit, Secret  # noqa: PLC0415
    from app.store.db import create_engine  # noqa: PLC0415
    from app.store.queue import QueueRepository  # noqa: PLC0415
    from app.sync.core.jobs import EntityType, JobDirection, JobSource  # noqa: PLC0415
    from app.sync.engine.engine import SyncEngine  # noqa: PLC0415
    from app.warp.connector import SqlWarpConnector  # noqa: PLC0415

    shim = ctypes.CDLL(os.environ["HUBSYNC_INSTRUCTIONS_SHIM"])
    engine = create_engine(os.environ["HUBSYNC_INSTRUCTIONS_URL"])
    limit = RateLimit(100_000, 10.0)  # never waits: the count is of the work, not the pacing
    try:
        ids = await prepare(engine)
        queue = QueueRepository(engine)
        config = SandboxConfig(rate_limit=limit, search_index_delay_seconds=0)
        async with running_sandbox(config) as sandbox:
            client = HubSpotClient(
                base_url=SANDBOX_BASE_URL,
                access_token=Secret(TEST_TOKEN),
                limiter=PostgresRateLimiter(engine, limit),
                transport=sandbox.client._transport,  # the sandbox's app, in process
            )
            async with client:
                await ensure_properties(client)
                sync = SyncEngine(
                    engine=engine,
                    warp=SqlWarpConnector(engine, "accounts.customers"),
                    hubspot=client,
                )
                tune_garbage_collector()
                change = (
                    "UPDATE accounts.customers SET current_balance = current_balance + 1"
                    if mode == "warp-only"
                    else "UPDATE accounts.customers SET company_name = company_name || '.'"
                )
                for batch in range(-1 - WARM_UP, batches):  # the first creates the companies
                    if batch > -1 - WARM_UP:
                        async with engine.begin() as connection:
                            await connection.exec_driver_sql(f"{change}, updated_at = now()")
                    async with engine.begin() as connection:
                        await queue.enqueue_many(
                            connection,
                            EntityType.CUSTOMER,
                            ids,
                            source=JobSource.API,
                            direction=JobDirection.TO_HUBSPOT,
                        )
                    if batch >= 0:
                        shim.counted()
                    claimed = await queue.claim("lane", CUSTOMERS, 30)
                    outcomes = await sync(claimed)
                    await queue.complete("lane", outcomes, claims={j.id: j.claim for j in claimed})
                    if batch >= 0:
                        shim.uncounted()
                    failed = [o for o in outcomes if o.status.value != "done"]
                    if len(claimed) != CUSTOMERS or failed:
                        raise SystemExit(f"batch {batch}: {len(claimed)} claimed, {failed[:1]}")
    finally:
        await engine.dispose()
    gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("warp-only", "two-way"), default="warp-only")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hubsync-root", type=Path, default=ROOT)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.mode, args.batches))
        return
    if shutil.which("valgrind") is None or shutil.which("gcc") is None:
        raise SystemExit("needs valgrind and gcc (Debian: apt-get install valgrind gcc)")
    print(f"machine: {machine()} (the count does not depend on its load)")
    print(
        f"command: python -m bench.instructions --mode {args.mode} --batches {args.batches} "
        f"--runs {args.runs} --hubsync-root {args.hubsync_root}"
    )
    counts = []
    with tempfile.TemporaryDirectory() as scratch:
        shim = compile_shim(Path(scratch))
        for run in range(args.runs):
            with database() as name:
                url = libpq(name).replace("postgresql://", "postgresql+asyncpg://", 1)
                out = Path(scratch) / f"callgrind-{run}.out"
                counts.append(count(args, shim, out, url))
            print(f"run {run + 1}: {counts[-1] / 1e6:.2f} M instructions a batch of {CUSTOMERS}")
    print(
        f"median of {args.runs}: {statistics.median(counts) / 1e6:.2f} M instructions a "
        f"{args.mode} batch of {CUSTOMERS} (claim, engine with the sandbox in process, complete)"
    )


if __name__ == "__main__":
    main()
