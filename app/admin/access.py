"""Who may use the console: the password check, the signed session cookie, and the one-time
login link of the embedded default.

The session cookie is signed with itsdangerous by HUBSYNC_SECRET_KEY (HttpOnly,
SameSite=Lax, Secure behind HTTPS, expiring) and names a session kept on the server
(app/admin/sessions.py), which logout ends. It carries a fingerprint of the password, so
changing HUBSYNC_ADMIN_PASSWORD ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.settings import Secret

SESSION_COOKIE = "hubsync_admin"
SESSION_SECONDS = 8 * 3600
LOGIN_TRIES_PER_MINUTE = 5
ONE_TIME_LINK_SECONDS = 3600
MAX_NAME_CHARS = 40


@dataclass(frozen=True)
class Session:
    who: str  # "admin:<name>", the actor in the audit trail
    token: str  # the server-side session's token (app/store/admin_sessions.py)


class SessionSigner:
    def __init__(self, secret_key: Secret, password: Secret) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key.reveal(), salt="hubsync.admin.session")
        self._password = password
        self._fingerprint = hmac.new(
            secret_key.reveal().encode(), password.reveal().encode(), hashlib.sha256
        ).hexdigest()[:16]

    def password_matches(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self._password.reveal().encode())

    def issue(self, name: str, token: str) -> str:
        return self._serializer.dumps(
            {"who": f"admin:{clean_name(name)}", "k": self._fingerprint, "s": token}
        )

    def read(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("who"), str):
            return None
        if not isinstance(data.get("s"), str) or not data["s"]:
            return None  # a cookie from before sessions were kept on the server
        if not hmac.compare_digest(str(data.get("k", "")), self._fingerprint):
            return None
        return Session(who=data["who"], token=data["s"])


def clean_name(name: str) -> str:
    """The name typed at login, reduced to something safe to show and audit."""
    kept = "".join(ch for ch in name.strip() if ch.isalnum() or ch in "._-@ ")
    return kept[:MAX_NAME_CHARS].strip() or "operator"


class OneTimeLogin:
    """The embedded default's login link: valid once, for an hour."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(32)
        self._expires = time.monotonic() + ONE_TIME_LINK_SECONDS
        self._used = False

    def redeem(self, presented: str) -> bool:
        if self._used or time.monotonic() > self._expires:
            return False
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            return False
        self._used = True
        return True
