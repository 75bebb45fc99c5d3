"""Secrets never shown: whole URL passwords masked, malformed URLs refused in one line
without echoing them, an unusable SQLite path named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.logs import RedactSecrets
from app.settings import Settings, SettingsError, mask_url


def test_the_whole_password_is_masked_even_when_it_holds_an_at_sign() -> None:
    assert mask_url("postgresql://app:P@ssw0rd@db/hub") == "postgresql://app:***@db/hub"
    assert mask_url("https://user:hunter2@api.example.com") == "https://user:***@api.example.com"
    assert mask_url("sqlite+aiosqlite:///./hubsync.db") == "sqlite+aiosqlite:///./hubsync.db"
    line = RedactSecrets().redact("connecting to postgresql://app:P@ssw0rd@db/hub now")
    assert "ssw0rd" not in line
    assert "postgresql://app:**********@db/hub now" in line


def run_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], *argv: str
) -> int:
    monkeypatch.chdir(tmp_path)  # no .env file here
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        return main(list(argv))
    except SystemExit as exit_:  # how the commands stop on a configuration error
        return int(exit_.code or 0)


def test_check_config_masks_database_and_hubspot_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(
        monkeypatch,
        tmp_path,
        {
            "HUBSYNC_DATABASE_URL": "postgresql://app:P@ssw0rd@db/hub",
            "HUBSPOT_ACCESS_TOKEN": "pat-na1-secret-token",
            "HUBSPOT_CLIENT_SECRET": "client-secret",
            "HUBSPOT_BASE_URL": "https://proxyuser:hunter2@hubspot-proxy.internal",
        },
        "check-config",
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    for secret in ("ssw0rd", "P@", "hunter2", "pat-na1-secret-token"):
        assert secret not in out + err
    assert "hubspot: https://proxyuser:***@hubspot-proxy.internal" in out


@pytest.mark.parametrize(
    "case",
    [
        ("HUBSYNC_DATABASE_URL", "postgresql://x:pw-secret@h:notaport/db", ["pw-secret"]),
        ("WARP_DATABASE_URL", "notaurl://::", ["notaurl"]),
        ("HUBSPOT_BASE_URL", "https://u:pw-secret@host:notaport", ["pw-secret", "notaport"]),
        ("HUBSPOT_BASE_URL", "ftp://u:pw-secret@host", ["pw-secret"]),
    ],
)
def test_a_malformed_url_is_one_line_naming_the_variable_never_the_value(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, str, list[str]],
) -> None:
    variable, value, fragments = case
    with pytest.raises(SettingsError) as refused:
        Settings.from_mapping({variable: value})
    assert str(refused.value).startswith(f"{variable}: ")
    code = run_cli(monkeypatch, tmp_path, {variable: value}, "check-config")
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert variable in err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment not in err


def test_an_unusable_sqlite_path_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "hubsync.db"
    env = {"HUBSYNC_DATABASE_URL": f"sqlite:///{missing}", "HUBSYNC_MODE": "demo"}
    for command in ("check-config", "migrate", "serve"):
        code = run_cli(monkeypatch, tmp_path, env, command)
        _, err = capsys.readouterr()
        assert code == 2, command
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "HUBSYNC_DATABASE_URL" in lines[0]
        assert "does not exist" in lines[0]
