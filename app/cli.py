"""The `hubsync` command: serve, migrate, sandbox, and the operator's tools."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence

from app.settings import Settings, SettingsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hubsync",
        description="Keep WARP customers and HubSpot companies in agreement, field by field.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the service (API, webhooks, worker, scheduler)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--migrate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="migrate the database first (default: only on the embedded SQLite database)",
    )

    migrate = commands.add_parser("migrate", help="bring the database schema to the latest version")
    migrate.add_argument("--revision", default="head", help="target revision (default head)")
    migrate.add_argument(
        "--downgrade", action="store_true", help="downgrade to --revision instead (e.g. base)"
    )
    sandbox = commands.add_parser(
        "sandbox", help="run the HubSpot sandbox alone, as a stand-in for HubSpot's API"
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8090, help="port to bind (default 8090)")
    sandbox.add_argument("--webhook-url", help="where to deliver signed webhooks (default: none)")
    sandbox.add_argument("--client-secret", help="secret that signs webhooks (default: random)")
    sandbox.add_argument("--app-id", default="1", help="app id of API writes (default 1)")
    sandbox.add_argument("--access-token", help="require this bearer token (default: any)")
    sandbox.add_argument("--portal-id", type=int, default=1, help="the portal's id (default 1)")
    sandbox.add_argument("--rate-limit", default="100/10s", help="requests per window (100/10s)")
    commands.add_parser("check-config", help="read the configuration and print it, secrets masked")
    relink = commands.add_parser(
        "relink", help="show the HubSpot portal this database's links belong to; move away from it"
    )
    relink.add_argument(
        "--reset",
        action="store_true",
        help="forget every link, field state and open conflict, and the recorded portal, so "
        "the next start binds to the portal it finds (moving portals on purpose)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":
        return run_sandbox_command(args)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"hubsync: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        for key, value in settings.describe().items():
            print(f"{key}: {value}")
        for warning in settings.startup_warnings():
            print(f"hubsync: warning: {warning}", file=sys.stderr)
        return refuse_problems(settings)
    if args.command == "relink":
        return relink(settings, reset=args.reset)
    if args.command == "migrate":
        from app.settings import sqlite_path_problem
        from app.store.bootstrap import migrate_database

        problem = sqlite_path_problem(settings.database_url.reveal())
        if problem is not None:
            print(f"hubsync: configuration error: HUBSYNC_DATABASE_URL: {problem}", file=sys.stderr)
            return 2
        asyncio.run(migrate_database(settings, revision=args.revision, downgrade=args.downgrade))
        return 0
    if args.command == "serve":
        return serve(settings, host=args.host, port=args.port, migrate=args.migrate)
    return 2  # pragma: no cover -- argparse refuses unknown commands


def run_sandbox_command(args: argparse.Namespace) -> int:
    from app.sandbox.access import is_loopback
    from app.sandbox.app import SandboxConfig, run_sandbox
    from app.settings import RateLimit

    try:
        limit = RateLimit.parse(args.rate_limit)
    except ValueError as exc:
        print(f"hubsync sandbox: --rate-limit: {exc}", file=sys.stderr)
        return 2
    config = SandboxConfig(
        rate_limit=limit,
        webhook_url=args.webhook_url,
        app_id=args.app_id,
        access_token=args.access_token,
        portal_id=args.portal_id,
        **({"client_secret": args.client_secret} if args.client_secret else {}),
    )
    if not is_loopback(args.host) and args.access_token is None:
        # Its control routes edit, reset and fault the portal: not for the network at large.
        print(
            f"hubsync sandbox: --host {args.host} is not loopback; give --access-token, which "
            "callers from elsewhere must then present (also on /_sandbox)",
            file=sys.stderr,
        )
        return 2
    print(f"HubSpot sandbox on http://{args.host}:{args.port} (rate limit {limit})")
    run_sandbox(args.host, args.port, config)
    return 0


def refuse_problems(settings: Settings) -> int:
    """Print what stops a start, one line each; 2 when there is any."""
    problems = settings.startup_problems()
    for problem in problems:
        print(f"hubsync: configuration error: {problem}", file=sys.stderr)
    return 2 if problems else 0


def relink(settings: Settings, *, reset: bool) -> int:
    from app.store.db import create_engine
    from app.store.portal import count_links, recorded_portal, reset_portal

    async def run() -> int:
        engine = create_engine(settings.database_url.reveal())
        try:
            async with engine.begin() as connection:
                portal = await recorded_portal(connection)
                links = await count_links(connection)
                if not reset:
                    print(f"links: {links}, bound to {portal or 'no portal yet'}")
                    print("`hubsync relink --reset` forgets them to move to another portal")
                    return 0
                dropped = await reset_portal(connection)
            print(
                f"forgot {dropped} links of {portal or 'no recorded portal'}; the next start "
                "binds to the portal it finds and syncs every customer there afresh"
            )
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def serve(settings: Settings, *, host: str, port: int, migrate: bool | None) -> int:
    from app.http_server import run_server
    from app.logs import configure_logging
    from app.main import create_app
    from app.preflight import PreflightError, preflight
    from app.store.bootstrap import is_embedded_default, migrate_database

    if refuse_problems(settings):
        return 2
    configure_logging(settings)
    try:
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
    if migrate or (migrate is None and is_embedded_default(settings)):
        asyncio.run(migrate_database(settings))
    app = create_app(settings)
    tune_garbage_collector()
    run_server(
        app,
        host=host,
        port=port,
        header_timeout=settings.header_timeout_seconds,
        max_connections=settings.max_connections,
    )
    return 0


def tune_garbage_collector() -> None:
    """For a serving process, called once everything is imported. Each request leaves many
    short-lived objects; with the defaults, the collector's full passes over every module,
    class and function loaded at start-up showed as the webhook intake's p99 (82 ms against
    29 ms with them out of the way, bench/README.md). `freeze` moves what exists now out of
    the collector's sight for good; a larger first threshold makes young passes rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
