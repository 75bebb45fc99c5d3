"""`hubsync demo edit BAN field=value …`: a change made on WARP's side, as WARP's own
application would make it — the customer's row written (its `updated_at` moved on) and hubsync
told, as WARP calls `POST /v1/sync/customers/{id}` — the counterpart of the sandbox's
`PATCH /_hubspot/_sandbox/companies/{id}` for the CRM's side. Demo mode only: it writes
straight into the WARP table, which in production belongs to WARP."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from app.cli.common import CommandError, load_settings, print_json, run_on_database
from app.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Subcommands


def register(commands: Subcommands) -> None:
    demo = commands.add_parser("demo", help="the demo's WARP side (HUBSYNC_MODE=demo)")
    verbs = demo.add_subparsers(dest="verb", required=True, metavar="VERB")
    edit = verbs.add_parser(
        "edit",
        help="edit a WARP customer as WARP would (by BAN), and queue its sync",
        description=(
            "Write fields of a WARP customer, found by its BAN, e.g. "
            "`hubsync demo edit ZT-487392012 credit_limit=75000 services.data.enabled=true`. "
            "A value is read as JSON when it is JSON (numbers, true, false, null), else as text."
        ),
    )
    edit.add_argument("ban", help="the customer's BAN")
    edit.add_argument("fields", nargs="+", metavar="FIELD=VALUE", help="WARP field and value")
    edit.add_argument("--json", action="store_true", help="print the result as JSON")
    edit.set_defaults(run=run_edit)


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"expected FIELD=VALUE, got {pair!r}")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, (dict, list)):
            value = raw  # a whole JSON document is not one field's value
        fields[name.strip()] = value
    return fields


def run_edit(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.sandbox_mode:
        print(
            "hubsync demo edit: demo mode only (HUBSYNC_MODE=demo); in production WARP's own "
            "application writes its customers",
            file=sys.stderr,
        )
        return 2
    try:
        fields = parse_assignments(args.fields)
        result = run_on_database("demo edit", edit_customer(settings, args.ban, fields))
    except CommandError as exc:
        print(f"hubsync demo edit: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print_json(result)
    else:
        changed = ", ".join(f"{k}={json.dumps(v)}" for k, v in result["fields"].items())
        print(
            f"WARP customer {result['ban']} ({result['customer_id']}): {changed}; "
            f"updated_at {result['updated_at']}; sync queued (job {result['job_id']})"
        )
    return 0


async def edit_customer(settings: Settings, ban: str, fields: dict[str, Any]) -> dict[str, Any]:
    from app.store.db import create_engine
    from app.store.operations import notify_workers
    from app.store.queue import QueueRepository
    from app.sync.core.jobs import EntityType, JobDirection, JobSource
    from app.warp.connector import SqlWarpConnector

    engine = create_engine(settings.database_url.reveal(), pool_size=1)
    warp_engine = (
        engine
        if settings.effective_warp_database_url == settings.database_url
        else create_engine(settings.effective_warp_database_url.reveal(), pool_size=1)
    )
    try:
        warp = SqlWarpConnector(warp_engine, settings.effective_customers_table)
        found = await warp.fetch_customers_by_ban([ban])
        customer = next(iter(found.values()), None)
        if customer is None:
            raise CommandError(f"no WARP customer with BAN {ban!r}")
        try:
            written = await warp.write_fields(str(customer["id"]), fields)
        except ValueError as exc:  # a field that is not a writable column
            raise CommandError(str(exc)) from None
        async with engine.begin() as connection:
            enqueued = await QueueRepository(engine).enqueue(
                connection,
                EntityType.CUSTOMER,
                str(customer["id"]),
                source=JobSource.API,
                direction=JobDirection.TO_HUBSPOT,
            )
        await notify_workers(engine)
    finally:
        if warp_engine is not engine:
            await warp_engine.dispose()
        await engine.dispose()
    return {
        "customer_id": str(customer["id"]),
        "ban": customer["ban"],
        "fields": fields,
        "updated_at": str(written["updated_at"]),
        "job_id": enqueued.job_id,
    }
