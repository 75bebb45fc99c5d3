"""`python -m app.sandbox` is `hubsync sandbox`: the same flags and the same refusals."""

from __future__ import annotations

import pytest

from app.sandbox import __main__ as sandbox_main
from app.sandbox import app as sandbox_app
from app.sandbox.config import SandboxConfig


def test_python_m_app_sandbox_takes_every_flag_of_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[str, int, SandboxConfig]] = []
    monkeypatch.setattr(sandbox_app, "run_sandbox", lambda *args: started.append(args))
    argv = ["--port", "9", "--portal-id", "7", "--account-timezone", "Europe/Berlin"]
    assert sandbox_main.main(argv) == 0
    [(host, port, config)] = started
    assert (host, port, config.portal_id, config.account_timezone) == (
        "127.0.0.1",
        9,
        7,
        "Europe/Berlin",
    )


def test_python_m_app_sandbox_refuses_the_network_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[object] = []
    monkeypatch.setattr(sandbox_app, "run_sandbox", lambda *args: started.append(args))
    assert sandbox_main.main(["--host", "0.0.0.0", "--port", "9"]) == 2  # noqa: S104 -- the point
    assert started == []
    assert "not loopback" in capsys.readouterr().err
