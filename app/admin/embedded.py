"""The embedded default's credentials: with the built-in sandbox and nothing configured, a
newcomer still gets a console and an API they can use. Start-up fills in the missing admin
password, session key and API token, and `hubsync serve` prints a banner with a one-time
login link, the password and the token — only in sandbox mode, never against a real HubSpot.

They stay the same across restarts of one demo database: generated once, they are kept in a
`.env`-style file beside the SQLite file (`hubsync.db.env`, mode 0600), read again at every
start. A demo on PostgreSQL (no file to sit beside) gets new ones at each start."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.engine import make_url

from app.admin.access import OneTimeLogin
from app.settings import Secret, Settings, read_env_file

PASSWORD = "HUBSYNC_ADMIN_PASSWORD"  # noqa: S105 -- a variable name, not a secret
SECRET_KEY = "HUBSYNC_SECRET_KEY"  # noqa: S105 -- a variable name
API_TOKENS = "HUBSYNC_API_TOKENS"
CREDENTIALS_SUFFIX = ".env"


@dataclass(frozen=True)
class EmbeddedAccess:
    settings: Settings
    one_time: OneTimeLogin | None
    api_token: str | None
    password: str | None = None
    credentials_file: Path | None = None


def credentials_file(settings: Settings) -> Path | None:
    """Where a demo database's generated credentials live: beside its SQLite file; None in
    production, and for a database that is not a file."""
    if not settings.sandbox_mode:
        return None
    url = make_url(settings.database_url.reveal())
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = Path(url.database)
    return database.with_name(database.name + CREDENTIALS_SUFFIX)


def generate_embedded_access(settings: Settings) -> EmbeddedAccess:
    """`settings` with the demo's credentials where the sandbox runs without any; unchanged
    (and nothing generated or written) in every other case."""
    if not settings.sandbox_mode:
        return EmbeddedAccess(settings, None, None)
    path = credentials_file(settings)
    kept = read_env_file(path) if path is not None and path.is_file() else {}
    wanted: dict[str, str] = {}
    one_time = None
    password = None
    token = None
    if settings.admin_password is None and settings.secret_key is None:
        password = kept.get(PASSWORD) or secrets.token_urlsafe(18)
        wanted[PASSWORD] = password
        wanted[SECRET_KEY] = kept.get(SECRET_KEY) or secrets.token_urlsafe(48)
        settings = replace(
            settings, admin_password=Secret(password), secret_key=Secret(wanted[SECRET_KEY])
        )
        one_time = OneTimeLogin()
    if not settings.api_tokens:
        token = kept.get(API_TOKENS) or secrets.token_urlsafe(32)
        wanted[API_TOKENS] = token
        settings = replace(settings, api_tokens=(Secret(token),))
    if path is not None and wanted and any(kept.get(k) != v for k, v in wanted.items()):
        write_credentials(path, {**kept, **wanted})
    elif path is not None and path.is_file():
        path.chmod(0o600)  # a copy made with a wider mode is narrowed again
    return EmbeddedAccess(
        settings, one_time, token, password, path if path is not None and wanted else None
    )


def write_credentials(path: Path, values: dict[str, str]) -> None:
    """Written to a new file created 0600 and renamed over the old one: never readable by
    others, not even for a moment, and never half-written."""
    partial = path.with_name(path.name + ".tmp")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(
            "# hubsync demo credentials, generated once for the database beside this file.\n"
            "# Delete this file to get new ones; set the variables to choose your own.\n"
        )
        for key, value in values.items():
            file.write(f"{key}={value}\n")
    partial.replace(path)


def banner(access: EmbeddedAccess, base_url: str) -> str | None:
    """The first lines a newcomer reads, in plain text: how to get in (sandbox mode, when
    something was generated), or None."""
    if access.one_time is None and access.api_token is None:
        return None
    base = base_url.rstrip("/")
    rule = "=" * 72
    lines = [rule, "hubsync demo (built-in HubSpot sandbox)", ""]
    if access.one_time is not None:
        lines += [
            f"  Console:    {base}/admin/login/once?token={access.one_time.token}",
            "              (one-time link, valid for an hour; `hubsync admin link` mints another)",
            f"  Password:   {access.password}",
        ]
    if access.api_token is not None:
        lines += [
            f"  API token:  {access.api_token}",
            f'              curl -H "Authorization: Bearer {access.api_token}" '
            f"{base}/v1/sync/dashboard",
        ]
    if access.credentials_file is not None:
        lines += ["", f"  Kept in {access.credentials_file} (mode 0600) for the next start."]
    lines += [rule]
    return "\n".join(lines)
