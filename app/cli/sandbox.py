"""`hubsync sandbox`: the HubSpot emulator alone, as a stand-in for HubSpot's API."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.cli.common import Subcommands


def register(commands: Subcommands) -> None:
    sandbox = commands.add_parser(
        "sandbox", help="run the HubSpot sandbox alone, as a stand-in for HubSpot's API"
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8090, help="port to bind (default 8090)")
    sandbox.add_argument("--webhook-url", help="where to deliver signed webhooks (default: none)")
    sandbox.add_argument("--client-secret", help="secret that signs webhooks (default: random)")
    sandbox.add_argument("--app-id", default="1", help="app id of API writes (default 1)")
    sandbox.add_argument("--access-token", help="require this bearer token (default: any)")
    sandbox.add_argument(
        "--open", action="store_true", help="take requests without a bearer token (HubSpot won't)"
    )
    sandbox.add_argument("--portal-id", type=int, default=1, help="the portal's id (default 1)")
    sandbox.add_argument("--rate-limit", default="100/10s", help="requests per window (100/10s)")
    sandbox.add_argument(
        "--account-timezone", default="UTC", help="the daily limit resets at its midnight (UTC)"
    )
    sandbox.add_argument(
        "--latency-model",
        help="answer as slowly as HubSpot: a preset such as hubspot-2026 (default: at once)",
    )
    sandbox.set_defaults(run=run_sandbox_command)


def run_sandbox_command(args: argparse.Namespace) -> int:
    from app.sandbox.access import is_loopback
    from app.sandbox.app import SandboxConfig, run_sandbox
    from app.sandbox.latency import PRESETS
    from app.settings import RateLimit

    try:
        limit = RateLimit.parse(args.rate_limit)
    except ValueError as exc:
        print(f"hubsync sandbox: --rate-limit: {exc}", file=sys.stderr)
        return 2
    if args.latency_model is not None and args.latency_model not in PRESETS:
        print(
            f"hubsync sandbox: --latency-model: unknown preset {args.latency_model!r};"
            f" presets: {', '.join(sorted(PRESETS))}",
            file=sys.stderr,
        )
        return 2
    config = SandboxConfig(
        rate_limit=limit,
        webhook_url=args.webhook_url,
        app_id=args.app_id,
        access_token=args.access_token,
        open_access=args.open,
        portal_id=args.portal_id,
        account_timezone=args.account_timezone,
        latency_model=args.latency_model,
        **({"client_secret": args.client_secret} if args.client_secret else {}),
    )
    if not is_loopback(args.host) and args.access_token is None:
        # Its control routes edit, reset and fault the portal: not for the network at large.
        print(
            f"hubsync sandbox: --host {args.host} is not loopback; give --access-token, which "
            "callers from elsewhere must then present (also on /_sandbox)",
            file=sys.stderr,
        )
        return 2
    latency = f", latency model {args.latency_model}" if args.latency_model else ""
    print(f"HubSpot sandbox on http://{args.host}:{args.port} (rate limit {limit}{latency})")
    run_sandbox(args.host, args.port, config)
    return 0
