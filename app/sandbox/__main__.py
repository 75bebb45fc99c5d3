"""`python -m app.sandbox`: serve the HubSpot sandbox alone (the CLI's `sandbox` command too)."""

from __future__ import annotations

import argparse

from app.sandbox.app import run_sandbox
from app.sandbox.config import SandboxConfig
from app.settings import RateLimit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--webhook-url", help="where to deliver signed webhook batches")
    parser.add_argument("--client-secret", help="signs webhooks (default: random)")
    parser.add_argument("--app-id", default="1")
    parser.add_argument("--access-token", help="require this Bearer token (default: any)")
    parser.add_argument(
        "--rate-limit", type=RateLimit.parse, default=RateLimit(100, 10.0), help="e.g. 100/10s"
    )
    parser.add_argument("--latency-model", help="a latency preset, e.g. hubspot-2026")
    args = parser.parse_args(argv)
    config = SandboxConfig(
        rate_limit=args.rate_limit,
        app_id=args.app_id,
        webhook_url=args.webhook_url,
        access_token=args.access_token,
        latency_model=args.latency_model,
    )
    if args.client_secret:
        config.client_secret = args.client_secret
    run_sandbox(args.host, args.port, config)


if __name__ == "__main__":
    main()
