"""The `hubsync` command: serve, migrate, sandbox, and the operator's tools.

One module per command group; each has `register(commands)`, which adds its subcommands and
sets `run` on them: `run(args) -> exit code`. A new command group is a new module here and
one line in `COMMAND_GROUPS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.cli import (
    admin,
    capture,
    database,
    demo,
    jobs,
    pausing,
    portal,
    reconcile,
    sandbox,
    scope,
    serve,
    status,
)

COMMAND_GROUPS = (
    serve,
    database,
    portal,
    sandbox,
    status,
    jobs,
    pausing,
    reconcile,
    capture,
    scope,
    admin,
    demo,
)

# Kept importable from here: bench/webhook_intake.py tunes its server the same way.
tune_garbage_collector = serve.tune_garbage_collector


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hubsync",
        description="Keep WARP customers and HubSpot companies in agreement, field by field.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


__all__ = ["build_parser", "main", "tune_garbage_collector"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
