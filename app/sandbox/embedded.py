"""The sandbox built into hubsync's own process for the embedded default (`HUBSYNC_MODE=demo`):
the one place where the service's settings become a sandbox. Only the composition roots
(`app.main`, `app.cli`) call it; hubsync's HubSpot client never knows the sandbox exists."""

from __future__ import annotations

from starlette.applications import Starlette

from app.hubspot.connection import SANDBOX_APP_ID, SANDBOX_PORTAL_ID
from app.sandbox.app import SandboxConfig, create_sandbox_app
from app.settings import Secret, Settings


def build_sandbox_app(settings: Settings, webhook_secret: Secret | None) -> Starlette:
    """The in-process sandbox, signing with hubsync's webhook secret.

    Its rate limit is its own setting (HUBSYNC_SANDBOX_RATE_LIMIT, HubSpot's 100 / 10 s by
    default), not the client's HUBSPOT_RATE_LIMIT: a client set above the portal's limit meets
    429s here as it would at HubSpot. Like HubSpot it refuses a request without a Bearer token
    (any token will do: a person can browse it with `Authorization: Bearer x`).
    """
    config = SandboxConfig(
        rate_limit=settings.sandbox_rate_limit,
        client_secret=webhook_secret.reveal() if webhook_secret else SandboxConfig().client_secret,
        app_id=settings.hubspot_app_id or SANDBOX_APP_ID,
        portal_id=SANDBOX_PORTAL_ID,
        account_timezone=settings.hubspot_account_timezone,
    )
    return create_sandbox_app(config)
