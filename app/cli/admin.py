"""`hubsync admin link`: a new one-time console login link, for when the one printed at start
was used or has expired. It is kept in the database (a hash of it), so the running service —
another process — accepts it, once, within the hour."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from app.cli.common import CommandError, load_settings, run_on_database
from app.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Subcommands

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def register(commands: Subcommands) -> None:
    admin = commands.add_parser("admin", help="the operator's console (a new login link)")
    verbs = admin.add_subparsers(dest="verb", required=True, metavar="VERB")
    link = verbs.add_parser(
        "link",
        help="print a new one-time login link to the console (valid for an hour)",
        description="Mint a one-time console login link the running service accepts once.",
    )
    link.add_argument(
        "--base-url",
        help=f"where the service answers (default HUBSYNC_PUBLIC_URL, else {DEFAULT_BASE_URL})",
    )
    link.set_defaults(run=run_link)


def run_link(args: argparse.Namespace) -> int:
    from app.admin.embedded import generate_embedded_access

    settings = generate_embedded_access(load_settings()).settings  # the demo's, from its file
    if not settings.admin_enabled:
        print(
            "hubsync admin link: the console is off; set HUBSYNC_ADMIN_PASSWORD and "
            "HUBSYNC_SECRET_KEY (or run the demo: HUBSYNC_MODE=demo)",
            file=sys.stderr,
        )
        return 2
    try:
        token = run_on_database("admin link", mint(settings))
    except CommandError as exc:
        print(f"hubsync admin link: {exc}", file=sys.stderr)
        return 1
    base = (args.base_url or settings.public_url or DEFAULT_BASE_URL).rstrip("/")
    print(f"{base}/admin/login/once?token={token}")
    return 0


async def mint(settings: Settings) -> str:
    from app.admin.sessions import mint_login_link
    from app.store.db import create_engine

    engine = create_engine(settings.database_url.reveal(), pool_size=1)
    try:
        return await mint_login_link(engine)
    finally:
        await engine.dispose()
