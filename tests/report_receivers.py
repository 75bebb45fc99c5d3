"""Real places for reports to arrive at: an HTTP receiver (http.server in a thread) and an
SMTP server (aiosmtpd, with a login it checks), each on a free port, each able to start
late on the port it was given, as a destination that was down and comes back."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER, SMTP_PASSWORD = "reports", "p@ss-not-real"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class HttpReceiver:
    """POSTs to any path, kept as (path, JSON body)."""

    port: int = field(default_factory=free_port)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Answer this status (and echo the path in the body) instead of taking the report.
    refuse_with: int | None = None
    refused: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                if receiver.refuse_with is not None:
                    receiver.refused += 1
                    answer = f"no hook at {self.path}".encode()
                    self.send_response(receiver.refuse_with)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                receiver.received.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class Mailbox:
    """Every message accepted, parsed; a login other than SMTP_USER / SMTP_PASSWORD is refused."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []

    async def handle_DATA(  # noqa: N802 -- the name aiosmtpd calls
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted"

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (SMTP_USER, SMTP_PASSWORD)
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command."""
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(  # noqa: S603 -- fixed argv
        [  # noqa: S607 -- openssl from PATH
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class SmtpServer:
    port: int = field(default_factory=free_port)
    mailbox: Mailbox = field(default_factory=Mailbox)
    # With a certificate: STARTTLS offered and required before MAIL and AUTH.
    certificate: tuple[Path, Path] | None = None
    _controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{SMTP_USER}:p%40ss-not-real@127.0.0.1:{self.port}"

    def start(self) -> None:
        tls: dict[str, Any] = {"auth_required": False, "auth_require_tls": False}
        if self.certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.certificate)
            tls = {"tls_context": context, "require_starttls": True, "auth_required": True}
        # (Without TLS, aiosmtpd warns against requiring AUTH: it is offered, not required.)
        self._controller = Controller(
            self.mailbox, hostname="127.0.0.1", port=self.port, authenticator=self.mailbox, **tls
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
