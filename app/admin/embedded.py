"""The embedded default's credentials: with the built-in sandbox and nothing configured, a
newcomer still gets a console and an API they can use. Start-up generates the missing admin
password, session key and API token, and announces a one-time login link and the token —
only in sandbox mode, never against a real HubSpot."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace

from app.admin.access import OneTimeLogin
from app.settings import Secret, Settings

log = logging.getLogger("hubsync")


@dataclass(frozen=True)
class EmbeddedAccess:
    settings: Settings
    one_time: OneTimeLogin | None
    api_token: str | None


def generate_embedded_access(settings: Settings) -> EmbeddedAccess:
    """`settings` with generated credentials where the sandbox runs without any; unchanged
    (and nothing generated) in every other case."""
    if not settings.sandbox_mode:
        return EmbeddedAccess(settings, None, None)
    one_time = None
    token = None
    if settings.admin_password is None and settings.secret_key is None:
        settings = replace(
            settings,
            admin_password=Secret(secrets.token_urlsafe(24)),
            secret_key=Secret(secrets.token_urlsafe(48)),
        )
        one_time = OneTimeLogin()
    if not settings.api_tokens:
        token = secrets.token_urlsafe(32)
        settings = replace(settings, api_tokens=(Secret(token),))
    return EmbeddedAccess(settings, one_time, token)


def announce(access: EmbeddedAccess, base_url: str) -> None:
    """The first lines a newcomer reads: how to get in (sandbox mode only)."""
    if access.one_time is not None:
        log.warning(
            "sandbox mode: open %s/admin/login/once?token=%s to sign in to the console "
            "(one-time link, valid for an hour; set HUBSYNC_ADMIN_PASSWORD and "
            "HUBSYNC_SECRET_KEY to choose your own)",
            base_url.rstrip("/"),
            access.one_time.token,
        )
    if access.api_token is not None:
        log.warning(
            "sandbox mode: API token for this run: %s (Authorization: Bearer <token>; "
            "set HUBSYNC_API_TOKENS to choose your own)",
            access.api_token,
        )
