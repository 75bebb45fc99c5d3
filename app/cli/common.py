"""What every command shares: reading the configuration, and answering as text or JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeAlias, TypeVar

from app.errors import HubsyncError
from app.settings import Settings, SettingsError

# What `register(commands)` receives: argparse names the type privately.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


T = TypeVar("T")


class CommandError(HubsyncError):
    """A command cannot do what it was asked; the message is one line for the operator."""


def load_settings() -> Settings:
    """The configuration, or exit 2 with one line per bad value, each naming the variable
    (no secret in it)."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"hubsync: configuration error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def refuse_problems(settings: Settings) -> int:
    """Print what stops a start, one line each; 2 when there is any."""
    problems = settings.startup_problems()
    for problem in problems:
        print(f"hubsync: configuration error: {problem}", file=sys.stderr)
    return 2 if problems else 0


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of text"
    )


def run_on_database(command: str, work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; a database that cannot be reached or read is one line naming the kind of
    failure (never the URL, which may hold a password) and exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return asyncio.run(work)
    except KeyboardInterrupt:  # Ctrl-C where the command had nothing of its own to say
        print(f"hubsync {command}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except (OSError, SQLAlchemyError) as exc:
        print(
            f"hubsync {command}: cannot read the database ({type(exc).__name__}); "
            "is HUBSYNC_DATABASE_URL right and migrated (`hubsync migrate`)?",
            file=sys.stderr,
        )
        raise SystemExit(1) from None


def print_json(document: Any) -> None:
    try:
        print(json.dumps(document, indent=2, sort_keys=True, default=str))
        sys.stdout.flush()
    except BrokenPipeError:  # `hubsync status --json | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
