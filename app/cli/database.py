"""`hubsync migrate` and `hubsync check-config`: the schema and the configuration."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from app.cli.common import load_settings, refuse_problems
from app.settings import ENVIRONMENT, SECRET_ENVIRONMENT, mask_url

if TYPE_CHECKING:
    from app.cli.common import Subcommands


def register(commands: Subcommands) -> None:
    migrate = commands.add_parser("migrate", help="bring the database schema to the latest version")
    migrate.add_argument("--revision", default="head", help="target revision (default head)")
    migrate.add_argument(
        "--downgrade", action="store_true", help="downgrade to --revision instead (e.g. base)"
    )
    migrate.add_argument(
        "--yes", action="store_true", help="let a downgrade drop the tables and columns it lists"
    )
    migrate.add_argument(
        "--sql", action="store_true", help="print the SQL the migration would run; run nothing"
    )
    migrate.add_argument(
        "--from",
        dest="sql_from",
        metavar="REVISION",
        help="with --sql: start from this revision (base: an empty database) without "
        "connecting to the database",
    )
    migrate.set_defaults(run=run_migrate)
    check = commands.add_parser(
        "check-config", help="read the configuration and print it, secrets masked"
    )
    check.set_defaults(run=run_check_config)


def run_migrate(args: argparse.Namespace) -> int:
    from app.settings import sqlite_path_problem
    from app.store.bootstrap import migrate_database
    from app.store.migrate import LockTimeoutError

    if args.sql_from is not None and not args.sql:
        print("hubsync migrate: --from only goes with --sql", file=sys.stderr)
        return 2
    settings = load_settings()
    problem = sqlite_path_problem(settings.database_url.reveal())
    if problem is not None:
        print(f"hubsync: configuration error: HUBSYNC_DATABASE_URL: {problem}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(
            migrate_database(
                settings,
                revision=args.revision,
                downgrade=args.downgrade,
                confirmed=args.yes,
                sql=args.sql,
                sql_from=args.sql_from,
            )
        )
    except LockTimeoutError as error:
        print(f"hubsync migrate: {error}", file=sys.stderr)
        return 4


def run_check_config(_args: argparse.Namespace) -> int:
    settings = load_settings()
    for key, value in settings.describe().items():
        print(f"{key}: {value}")
    print("environment:")
    for line in environment_lines(os.environ):
        print(f"  {line}")
    for warning in settings.startup_warnings():
        print(f"hubsync: warning: {warning}", file=sys.stderr)
    return refuse_problems(settings)


def environment_lines(environ: Mapping[str, str]) -> list[str]:
    """Every setting hubsync reads, as set here or left to its default; secrets only say
    whether they are set."""
    lines = []
    for name in ENVIRONMENT:
        value = environ.get(name, "").strip()
        if not value:
            shown = "(default)"
        elif name in SECRET_ENVIRONMENT:
            shown = "(set, hidden)"
        elif "://" in value:  # a URL may carry a user and password (a proxy's, say)
            shown = mask_url(value)
        else:
            shown = value
        lines.append(f"{name}: {shown}")
    return lines
