"""Structured logging without secrets: JSON lines (or text), and a filter that masks any
configured secret or bearer token that would otherwise reach a log line."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from app.settings import Secret, Settings

_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
# Up to the last @ of the URL: a password may hold one (P@ssw0rd).
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)\S*(@)")
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


class RedactSecrets(logging.Filter):
    """Replaces known secret values, bearer tokens and URL passwords in every record."""

    def __init__(self, secrets: Iterable[Secret] = ()) -> None:
        super().__init__()
        self._values = sorted(
            {s.reveal() for s in secrets if len(s.reveal()) >= 4}, key=len, reverse=True
        )

    def redact(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "**********")
        text = _BEARER.sub(r"\1**********", text)
        return _URL_PASSWORD.sub(r"\1**********\2", text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _RESERVED and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logged_secrets(settings: Settings) -> list[Secret]:
    """Every configured secret a log line must never show (the report webhook's URL is
    one: a Slack-style hook's path is its credential)."""
    smtp = settings.report_smtp
    return [
        s
        for s in (
            settings.hubspot_access_token,
            settings.hubspot_client_secret,
            settings.admin_password,
            settings.secret_key,
            *settings.api_tokens,
            settings.report_webhook_url,
            smtp.password if smtp is not None else None,
        )
        if s is not None
    ]


def configure_logging(settings: Settings) -> None:
    secrets = logged_secrets(settings)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if settings.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = True
