"""`hubsync relink`: the HubSpot portal this database's links belong to, and moving away
from it on purpose (`--reset`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.cli.common import load_settings, run_on_database

if TYPE_CHECKING:
    from app.cli.common import Subcommands


def register(commands: Subcommands) -> None:
    relink = commands.add_parser(
        "relink", help="show the HubSpot portal this database's links belong to; move away from it"
    )
    relink.add_argument(
        "--reset",
        action="store_true",
        help="forget every link, field state and open conflict, and the recorded portal, so "
        "the next start binds to the portal it finds (moving portals on purpose)",
    )
    relink.set_defaults(run=run_relink)


def run_relink(args: argparse.Namespace) -> int:
    from app.store.db import create_engine
    from app.store.portal import count_links, recorded_portal, reset_portal

    settings = load_settings()

    async def run() -> int:
        engine = create_engine(settings.database_url.reveal())
        try:
            async with engine.begin() as connection:
                portal = await recorded_portal(connection)
                links = await count_links(connection)
                if not args.reset:
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

    return run_on_database("relink", run())
