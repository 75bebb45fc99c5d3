"""`hubsync migrate` and `hubsync check-config`: the schema and the configuration."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from app.cli.common import load_settings, refuse_problems

if TYPE_CHECKING:
    from app.cli.common import Subcommands


def register(commands: Subcommands) -> None:
    migrate = commands.add_parser("migrate", help="bring the database schema to the latest version")
    migrate.add_argument("--revision", default="head", help="target revision (default head)")
    migrate.add_argument(
        "--downgrade", action="store_true", help="downgrade to --revision instead (e.g. base)"
    )
    migrate.set_defaults(run=run_migrate)
    check = commands.add_parser(
        "check-config", help="read the configuration and print it, secrets masked"
    )
    check.set_defaults(run=run_check_config)


def run_migrate(args: argparse.Namespace) -> int:
    from app.settings import sqlite_path_problem
    from app.store.bootstrap import migrate_database

    settings = load_settings()
    problem = sqlite_path_problem(settings.database_url.reveal())
    if problem is not None:
        print(f"hubsync: configuration error: HUBSYNC_DATABASE_URL: {problem}", file=sys.stderr)
        return 2
    asyncio.run(migrate_database(settings, revision=args.revision, downgrade=args.downgrade))
    return 0


def run_check_config(_args: argparse.Namespace) -> int:
    settings = load_settings()
    for key, value in settings.describe().items():
        print(f"{key}: {value}")
    for warning in settings.startup_warnings():
        print(f"hubsync: warning: {warning}", file=sys.stderr)
    return refuse_problems(settings)
