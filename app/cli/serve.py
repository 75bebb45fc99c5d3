"""`hubsync serve`: the service itself (API, webhooks, worker, scheduler)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from app.cli.common import load_settings, refuse_problems
from app.settings import Settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from app.admin.embedded import EmbeddedAccess
    from app.cli.common import Subcommands

# prometheus-client's own variable: set, its metrics live in files there, one per process.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def register(commands: Subcommands) -> None:
    serve = commands.add_parser("serve", help="run the service (API, webhooks, worker, scheduler)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--migrate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="migrate the database first (default: only on the embedded SQLite database)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port (default 1; more need PostgreSQL and HubSpot)",
    )
    serve.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    if refuse_problems(settings):
        return 2
    if args.workers < 1:
        print("hubsync serve: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1:
        problem = why_not_several_processes(settings)
        if problem:
            print(f"hubsync serve: --workers {args.workers}: {problem}", file=sys.stderr)
            return 2
    return serve(
        settings, host=args.host, port=args.port, migrate=args.migrate, workers=args.workers
    )


def why_not_several_processes(settings: Settings) -> str | None:
    """What several processes of one service cannot share, or None."""
    if make_url(settings.database_url.reveal()).get_backend_name() != "postgresql":
        return "needs PostgreSQL (the queue and HubSpot's rate limit are shared through it)"
    if settings.sandbox_mode:
        return "needs HUBSPOT_ACCESS_TOKEN (the built-in sandbox lives in one process)"
    return None


def prepare_metrics_directory(workers: int) -> str | None:
    """For several processes, a directory where each keeps its metrics so `/metrics` can sum
    them (prometheus-client's multiprocess mode): PROMETHEUS_MULTIPROC_DIR, emptied of a
    previous run's files, or a new temporary one. Set in the environment before the workers
    start, which is when prometheus-client reads it."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if not directory:
        if workers == 1:
            return None
        directory = tempfile.mkdtemp(prefix="hubsync-metrics-")
        os.environ[MULTIPROCESS_ENV] = directory
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for kind in ("counter", "gauge", "histogram", "summary"):  # prometheus-client's files only
        for stale in path.glob(f"{kind}_*.db"):
            stale.unlink()
    return directory


def app_from_env() -> Starlette:
    """The app of one worker process under `--workers N` (uvicorn's factory)."""
    from app.http_server import server_options
    from app.logs import configure_logging
    from app.main import create_app

    settings = load_settings()
    configure_logging(settings)
    server_options(settings)  # this process's header limit
    return create_app(settings, when_started=tune_garbage_collector)


def serve(
    settings: Settings, *, host: str, port: int, migrate: bool | None, workers: int = 1
) -> int:
    import uvicorn

    from app.http_server import server_options
    from app.logs import configure_logging
    from app.store.bootstrap import is_embedded_default, migrate_database

    access = None
    if workers == 1:  # several processes are refused in demo mode: nothing to announce
        access = announce_demo_access(settings, host, port)
    # With the demo's credentials, so that a log line never shows them either.
    configure_logging(access.settings if access is not None else settings)
    # Before anything imports the metrics (the preflight's HubSpot client does).
    prepare_metrics_directory(workers)
    from app.preflight import PreflightError, preflight

    try:  # before anything is written: is this the portal the links belong to?
        asyncio.run(preflight(settings))
    except PreflightError as exc:
        print(f"hubsync: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("hubsync").info(
        "hubsync serve on http://%s:%d, %s",
        host,
        port,
        "in demo mode with the built-in HubSpot sandbox (HUBSYNC_MODE=demo)"
        if settings.sandbox_mode
        else f"against HubSpot at {settings.describe()['hubspot']}",
    )
    options = server_options(settings)
    migrating = migrate or (migrate is None and is_embedded_default(settings))
    if workers > 1:
        if migrating:
            asyncio.run(migrate_database(settings, say=logging.getLogger("hubsync.migrate").info))
        # Each worker process imports the app anew (uvicorn spawns them).
        uvicorn.run(
            f"{__name__}:app_from_env",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_config=None,
            proxy_headers=True,
            **options,
        )
        return 0
    from app.main import create_app

    app = create_app(settings, access=access, when_started=tune_garbage_collector)
    if migrating:
        asyncio.run(migrate_database(settings, say=logging.getLogger("hubsync.migrate").info))
    uvicorn.run(app, host=host, port=port, log_config=None, proxy_headers=True, **options)
    return 0


def announce_demo_access(settings: Settings, host: str, port: int) -> EmbeddedAccess:
    """The demo's credentials (kept beside its database), and their banner on stdout in
    plain text, before any log line: the first thing a newcomer reads after the install."""
    from app.admin.embedded import banner, generate_embedded_access

    access = generate_embedded_access(settings)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 -- shown only
    text = banner(access, settings.public_url or f"http://{shown_host}:{port}")
    if text is not None:
        print(text, flush=True)
    return access


def tune_garbage_collector() -> None:
    """For a serving process, called once the lifespan has started everything (the engine,
    the HubSpot client, the sandbox and console in demo mode, the worker). Each request
    leaves many short-lived objects; with the defaults, the collector's full passes over
    every module, class and function loaded at start-up showed as the webhook intake's p99
    (82 ms against 29 ms with them out of the way, bench/README.md). `freeze` moves what
    exists now out of the collector's sight for good — frozen before the lifespan ran, what
    it built stayed in sight (in one back-to-back pair of intake runs, 0.76 against 0.63 ms
    of CPU per delivery); a larger first threshold makes young passes rarer.

    A young pass costs what is alive when it runs, not what was allocated since the last:
    most of a sync batch's short-lived objects are freed by their reference counts before a
    pass at 100,000 comes, where one at 10,000 found the batches in flight alive and carried
    them into the middle generation (over a 10,000-customer outbound run: 0.14
    against 0.5 s in young passes and 0.02 against 0.16 s in middle ones, bench/README.md
    "Tenth pass")."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 20, 10)
