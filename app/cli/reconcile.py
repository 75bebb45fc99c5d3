"""`hubsync reconcile [--dry-run] [--report FILE.csv]`: one full reconciliation now.

Registering the command imports nothing heavy: the work lives in `reconcile_run`, loaded
when the command runs (importing the HubSpot client creates metrics, which `serve` must
set up first).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import load_settings, run_on_database

if TYPE_CHECKING:
    from app.cli.common import Subcommands


def register(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "reconcile", help="compare every WARP customer with HubSpot now, and report (or fix)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="only report; write nothing anywhere"
    )
    parser.add_argument("--report", metavar="FILE.csv", help="also write the report as CSV")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from app.cli.reconcile_run import reconcile

    settings = load_settings()
    report = Path(args.report) if args.report else None
    return run_on_database("reconcile", reconcile(settings, dry_run=args.dry_run, report=report))
