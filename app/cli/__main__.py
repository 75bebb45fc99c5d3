"""`python -m app.cli …` is the `hubsync` command."""

import sys

from app.cli import main

sys.exit(main())
