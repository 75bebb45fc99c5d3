"""`hubsync scope show|set`: the sync scope (which WARP customers hubsync syncs at all).

    hubsync scope set --not-in status=CLOSED --in customer_type=POSTPAID,RESELLER
    hubsync scope set --everyone          # no conditions: every customer syncs
    hubsync scope set --dry-run …         # who would enter and leave; nothing saved

Conditions are checked against the WARP table's real columns; every change is audited as
`cli:<user>@<host>`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from app.cli.common import CommandError, load_settings, print_json, run_on_database
from app.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Subcommands


def register(commands: Subcommands) -> None:
    scope = commands.add_parser(
        "scope",
        help="show or set which WARP customers are synced",
        description="The sync scope: conditions on WARP columns a customer must meet to be "
        "synced. A customer outside it is never created in HubSpot; one that leaves it keeps "
        "its company, untouched, until it comes back.",
    )
    verbs = scope.add_subparsers(dest="verb", required=True, metavar="show|set")
    show = verbs.add_parser("show", help="print the scope")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    show.set_defaults(run=run_scope)
    put = verbs.add_parser("set", help="replace the scope (all conditions must hold)")
    put.add_argument(
        "--in",
        dest="within",
        action="append",
        default=[],
        metavar="COLUMN=V1,V2",
        help="the column's value must be one of these (repeatable)",
    )
    put.add_argument(
        "--not-in",
        dest="without",
        action="append",
        default=[],
        metavar="COLUMN=V1,V2",
        help="the column's value must not be one of these; NULL passes (repeatable)",
    )
    put.add_argument("--everyone", action="store_true", help="no conditions: sync everyone")
    put.add_argument(
        "--dry-run", action="store_true", help="say who would enter and leave; save nothing"
    )
    put.add_argument("--json", action="store_true", help="print the result as JSON")
    put.set_defaults(run=run_scope)


def conditions_from_args(
    within: list[str], without: list[str], everyone: bool
) -> list[dict[str, Any]]:
    if bool(within or without) == everyone:
        raise CommandError("give --in/--not-in conditions, or --everyone (not both)")
    conditions = []
    for op, given in (("in", within), ("not_in", without)):
        for text in given:
            column, sep, values = text.partition("=")
            if not sep or not column.strip() or not values.strip():
                raise CommandError(f"expected COLUMN=VALUE[,VALUE…], got {text!r}")
            conditions.append(
                {
                    "column": column.strip(),
                    "op": op,
                    "values": [v.strip() for v in values.split(",") if v.strip()],
                }
            )
    return conditions


def run_scope(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        if args.verb == "show":
            result = run_on_database("scope", show_scope(settings))
        else:
            conditions = conditions_from_args(args.within, args.without, args.everyone)
            result = run_on_database("scope", set_scope(settings, conditions, args.dry_run))
    except CommandError as exc:
        print(f"hubsync scope: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print_json(result)
    elif "entering" in result:
        print(
            f"dry run over {result['customers']} customers: {result['entering']} would enter "
            f"({result['entering_without_company']} without a company, to be created), "
            f"{result['leaving']} would leave ({result['leaving_with_company']} with a "
            f"company, left untouched); {result['in_scope_after']} in scope after"
        )
    else:
        lines = _describe(result["conditions"])
        print("\n".join(lines) if lines else "everyone (no conditions)")
    return 0


def _describe(conditions: list[dict[str, Any]]) -> list[str]:
    return [
        f"{c['column']} {c['op'].replace('_', ' ')} ({', '.join(c['values'])})" for c in conditions
    ]


async def show_scope(settings: Settings) -> dict[str, Any]:
    from app.store.db import create_engine
    from app.store.sync_scope import scope_record

    engine = create_engine(settings.database_url.reveal())
    try:
        async with engine.connect() as connection:
            return await scope_record(connection)
    finally:
        await engine.dispose()


async def set_scope(
    settings: Settings, conditions: list[dict[str, Any]], dry_run: bool
) -> dict[str, Any]:
    import getpass
    import socket

    from app.store.db import create_engine
    from app.sync.core.scope import InvalidScopeError, scope_from_dicts
    from app.sync.operator.actions import change_scope
    from app.sync.operator.preview import preview_scope
    from app.warp.columns import TableMissingError
    from app.warp.connector import SqlWarpConnector

    actor = f"cli:{getpass.getuser()}@{socket.gethostname()}"
    engine = create_engine(settings.database_url.reveal())
    same = settings.effective_warp_database_url == settings.database_url
    warp_engine = engine if same else create_engine(settings.effective_warp_database_url.reveal())
    table = settings.effective_customers_table
    try:
        scope = scope_from_dicts(conditions)
        if dry_run:
            warp = SqlWarpConnector(warp_engine, table)
            return await preview_scope(
                engine, warp, scope, warp_engine=warp_engine, customers_table=table
            )
        before = await change_scope(
            engine, scope, by=actor, warp_engine=warp_engine, customers_table=table
        )
        return {"conditions": scope.to_json(), "previous": before.to_json()}
    except (InvalidScopeError, TableMissingError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        await engine.dispose()
        if warp_engine is not engine:
            await warp_engine.dispose()
