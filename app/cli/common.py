"""What every command shares: reading the configuration, and answering as text or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TypeAlias

from app.settings import Settings, SettingsError

# What `register(commands)` receives: argparse names the type privately.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CommandError(Exception):
    """A command cannot do what it was asked; the message is one line for the operator."""


def load_settings() -> Settings:
    """The configuration, or exit 2 with one line naming what is wrong (no secret in it)."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"hubsync: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of text"
    )


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, sort_keys=True, default=str))
