"""`hubsync capture install | uninstall | status`: the opt-in change capture in WARP
(app/warp/capture.py) on WARP_DATABASE_URL's customers table (WARP_CUSTOMERS_TABLE).

install: a trigger and a change table of hubsync's own, so SQL edits reach HubSpot without a
job; uninstall: WARP exactly as it was (changes not yet drained are dropped with it: the
catch-up still finds the rows); status: installed or not, and the changes waiting."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from app.cli.common import add_json_flag, load_settings, print_json, run_on_database
from app.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Subcommands

ACTIONS = ("install", "uninstall", "status")


def register(commands: Subcommands) -> None:
    capture = commands.add_parser(
        "capture",
        help="install, remove or inspect the change capture trigger in WARP",
        description="Change capture in WARP (opt-in): an AFTER INSERT OR UPDATE OR DELETE "
        "trigger on the customers table notes each change in a table of hubsync's own "
        "(schema hubsync_capture on PostgreSQL), which the service drains into jobs. "
        "PostgreSQL needs CREATE on the WARP database (for the schema) and TRIGGER on the "
        "customers table (or ownership of it).",
    )
    capture.add_argument("action", choices=ACTIONS)
    capture.add_argument(
        "--notify",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="install with NOTIFY from the trigger (PostgreSQL; at most one per WARP session "
        "every 100 ms): wakes the service at once instead of its 0.1 s poll, at a cost to "
        "every WARP write (default: --no-notify)",
    )
    add_json_flag(capture)
    capture.set_defaults(run=run_capture)


def run_capture(args: argparse.Namespace) -> int:
    try:
        report = run_on_database(
            "capture", capture_action(load_settings(), args.action, notify=args.notify)
        )
    except LookupError as exc:
        print(f"hubsync capture: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(report)
        return 0
    if not report["installed"]:
        print("capture: not installed")
        return 0
    print(f"capture: installed on {report['table']}")
    print(f"watched:  {', '.join(report['watched_columns'])}")
    print(f"notify:   {'yes' if report['notify'] else 'no (found by the poll)'}")
    oldest = report["oldest_pending"] or "-"
    print(f"pending:  {report['pending_changes']} change(s), oldest {oldest}")
    return 0


async def capture_action(settings: Settings, action: str, *, notify: bool) -> dict[str, Any]:
    from app.store.db import create_engine
    from app.warp.capture import Capture

    engine = create_engine(settings.effective_warp_database_url.reveal(), pool_size=1)
    table = settings.effective_customers_table
    try:
        capture = Capture(engine, table)
        if action == "install":
            status = await capture.install(notify=notify)
        elif action == "uninstall":
            status = await capture.uninstall()
        else:
            status = await capture.status()
    finally:
        await engine.dispose()
    return {"action": action, "table": table, **status.to_json()}
