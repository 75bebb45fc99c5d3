"""The two places a report goes: a webhook (a JSON POST whose `text` Slack, Mattermost or
Teams' Slack-compatible hooks show as it is, plus the summary's structured fields) and an
e-mail over SMTP (the text as its body, the run's CSV attached).

Each send raises `DeliveryError` with a message fit for a log line and the dashboard: the
webhook's URL (its path is the credential) and the SMTP password are never in it.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from app.errors import HubsyncError
from app.settings import Secret, SmtpServer

WEBHOOK, EMAIL = "webhook", "email"
SEND_TIMEOUT_SECONDS = 15.0


class DeliveryError(HubsyncError):
    """A destination did not take the report; the message names why, without secrets."""


class Destination(Protocol):
    name: str

    async def send(self, summary: dict[str, Any], csv: bytes | None, run_id: int | None) -> None:
        """Deliver the report, or raise DeliveryError."""


def scrub(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass
class WebhookDestination:
    url: Secret
    timeout: float = SEND_TIMEOUT_SECONDS
    name: str = WEBHOOK

    async def send(self, summary: dict[str, Any], csv: bytes | None, run_id: int | None) -> None:
        url = self.url.reveal()
        parts = urlsplit(url)
        # A Slack-style hook's path (and any query) is its credential, and servers echo it.
        hidden = (url, parts.path if len(parts.path) > 1 else None, parts.query)
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(url, json=summary)
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"webhook: {type(exc).__name__}: {scrub(str(exc), *hidden) or 'no detail'}"
            ) from None
        if response.status_code >= 300:
            body = scrub(response.text[:200], *hidden)
            raise DeliveryError(f"webhook: HTTP {response.status_code}: {body}")


@dataclass
class EmailDestination:
    server: SmtpServer
    sender: str
    recipients: tuple[str, ...]
    timeout: float = SEND_TIMEOUT_SECONDS
    name: str = EMAIL

    def message(
        self, summary: dict[str, Any], csv: bytes | None, run_id: int | None
    ) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = str(summary.get("title") or "hubsync report")
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2])
        message.set_content(str(summary.get("text") or ""))
        if csv is not None:
            message.add_attachment(
                csv,
                maintype="text",
                subtype="csv",
                filename=f"reconciliation-{run_id}.csv",
            )
        return message

    async def send(self, summary: dict[str, Any], csv: bytes | None, run_id: int | None) -> None:
        message = self.message(summary, csv, run_id)
        password = self.server.password.reveal() if self.server.password else None
        try:
            await asyncio.to_thread(self._send, message, password)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"e-mail via {self.server.describe()}: {type(exc).__name__}: "
                f"{scrub(str(exc), password) or 'no detail'}"
            ) from None

    def _send(self, message: EmailMessage, password: str | None) -> None:
        server = self.server
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if server.tls:
            client = smtplib.SMTP_SSL(
                server.host, server.port, timeout=self.timeout, context=context
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=self.timeout)
        with client:
            if server.starttls:
                client.starttls(context=context)
            if server.username is not None:
                client.login(server.username, password or "")
            client.send_message(message)
