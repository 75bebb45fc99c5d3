"""Secrets never shown: whole URL passwords masked, malformed URLs refused in one line
without echoing them, an unusable SQLite path named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.logs import RedactSecrets, logged_secrets
from app.settings import Secret, Settings, SettingsError, mask_url


def test_the_whole_password_is_masked_even_when_it_holds_an_at_sign() -> None:
    assert mask_url("postgresql://app:P@ssw0rd@db/hub") == "postgresql://app:***@db/hub"
    assert mask_url("https://user:hunter2@api.example.com") == "https://user:***@api.example.com"
    assert mask_url("sqlite+aiosqlite:///./hubsync.db") == "sqlite+aiosqlite:///./hubsync.db"
    line = RedactSecrets().redact("connecting to postgresql://app:P@ssw0rd@db/hub now")
    assert "ssw0rd" not in line
    assert "postgresql://app:**********@db/hub now" in line


def test_report_destinations_are_masked_in_settings_logs_and_check_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "HUBSYNC_REPORT_WEBHOOK_URL": "https://hooks.example.com/services/T0/hook-secret",
        "HUBSYNC_REPORT_SMTP_URL": "smtp://reports:mail%40secret@smtp.example.com:587",
        "HUBSYNC_REPORT_EMAIL_FROM": "hubsync@example.com",
        "HUBSYNC_REPORT_EMAIL_TO": "ops@example.com",
    }
    settings = Settings.from_mapping(env)
    assert settings.report_smtp is not None
    assert settings.report_smtp.password == Secret("mail@secret")  # percent-decoded
    shown = repr(settings) + str(settings.describe())
    assert "hook-secret" not in shown
    assert "mail@secret" not in shown
    assert "mail%40secret" not in shown
    assert settings.describe()["reports"] == (
        "webhook at hooks.example.com, e-mail via smtp://smtp.example.com:587 to 1 recipient(s)"
    )
    redact = RedactSecrets(logged_secrets(settings)).redact
    line = redact(f"POST {env['HUBSYNC_REPORT_WEBHOOK_URL']} login mail@secret")
    assert "hook-secret" not in line
    assert "mail@secret" not in line
    code = run_cli(monkeypatch, tmp_path, {**env, "HUBSYNC_MODE": "demo"}, "check-config")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "reports: webhook at hooks.example.com" in out
    assert "HUBSYNC_REPORT_WEBHOOK_URL: (set, hidden)" in out
    assert "HUBSYNC_REPORT_SMTP_URL: (set, hidden)" in out
    assert "hook-secret" not in out + err
    assert "mail@secret" not in out + err
    assert "mail%40secret" not in out + err


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"HUBSYNC_REPORT_SMTP_URL": "smtp://mail.example.com"}, "HUBSYNC_REPORT_EMAIL_FROM"),
        ({"HUBSYNC_REPORT_EMAIL_TO": "ops@example.com"}, "HUBSYNC_REPORT_SMTP_URL"),
        ({"HUBSYNC_REPORT_EMAIL_TO": "ops"}, "HUBSYNC_REPORT_EMAIL_TO"),
        ({"HUBSYNC_REPORT_SMTP_STARTTLS": "maybe"}, "HUBSYNC_REPORT_SMTP_STARTTLS"),
    ],
)
def test_an_incomplete_e_mail_destination_is_refused_by_name(
    env: dict[str, str], names: str
) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings.from_mapping(env)


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
        ("HUBSYNC_REPORT_SMTP_URL", "smtp://u:pw-secret@host:notaport", ["pw-secret"]),
        ("HUBSYNC_REPORT_SMTP_URL", "https://u:pw-secret@host", ["pw-secret"]),
        ("HUBSYNC_REPORT_WEBHOOK_URL", "ftp://hooks.example.com/pw-secret", ["pw-secret"]),
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
