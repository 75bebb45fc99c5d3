"""`python -m app.sandbox`: the same as `hubsync sandbox` (app/cli/sandbox.py), which serves
the HubSpot sandbox alone."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from app.cli import main as cli_main


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(["sandbox", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
