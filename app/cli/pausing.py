"""`hubsync pause|resume [outbound|inbound]`: stop or restart taking one direction's jobs
(both when none is named). Webhooks are still stored and work still queues while paused;
every change is audited as `cli:<user>@<host>`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from app.cli.common import load_settings, print_json, run_on_database
from app.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Subcommands

LABELS = {"outbound": "WARP → HubSpot", "inbound": "HubSpot → WARP"}


def register(commands: Subcommands) -> None:
    for name, verb in (("pause", "stop"), ("resume", "restart")):
        command = commands.add_parser(
            name,
            help=f"{verb} taking jobs of a sync direction (both when none is named)",
            description=f"{name.capitalize()} outbound (WARP -> HubSpot), inbound "
            "(HubSpot -> WARP), or both. While paused, webhooks are still stored and work "
            "still queues; the workers leave those jobs waiting. The action is audited.",
        )
        command.add_argument("direction", nargs="?", choices=tuple(LABELS), help="default: both")
        if name == "pause":
            command.add_argument("--reason", help="shown on the console while paused")
        command.add_argument("--json", action="store_true", help="print the result as JSON")
        command.set_defaults(run=run_pause_or_resume)


def run_pause_or_resume(args: argparse.Namespace) -> int:
    directions = [args.direction] if args.direction else list(LABELS)
    result = run_on_database(
        args.command,
        pause_or_resume(load_settings(), args.command, directions, getattr(args, "reason", None)),
    )
    if args.json:
        print_json(result)
        return 0
    for direction in directions:
        state = "paused" if direction in result["paused"] else "running"
        note = "" if direction in result["changed"] else f" (already {state})"
        print(f"{direction} ({LABELS[direction]}): {state}{note}")
    return 0


async def pause_or_resume(
    settings: Settings, action: str, directions: list[str], reason: str | None
) -> dict[str, Any]:
    import getpass
    import socket

    from app.store.db import create_engine
    from app.store.pauses import paused_directions
    from app.sync.operator import actions as operations

    actor = f"cli:{getpass.getuser()}@{socket.gethostname()}"
    engine = create_engine(settings.database_url.reveal())
    try:
        changed = []
        for direction in directions:
            if action == "pause":
                done = await operations.pause(engine, direction, by=actor, reason=reason)
            else:
                done = await operations.resume(engine, direction, by=actor)
            if done:
                changed.append(direction)
        async with engine.connect() as connection:
            paused = await paused_directions(connection)
    finally:
        await engine.dispose()
    return {"action": action, "changed": changed, "paused": sorted(paused)}
