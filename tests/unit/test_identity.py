"""The one ban normalisation and what makes a ban unusable (app/sync/core/identity.py)."""

from __future__ import annotations

import pytest

from app.sync.core.identity import MAX_BAN_LENGTH, ban_problem, normalize_ban, shown, usable_ban


@pytest.mark.parametrize(
    ("raw", "ban"),
    [
        ("ZT-100000001", "ZT-100000001"),
        ("ZT-100000001 ", "ZT-100000001"),
        ("\tZT-100000001\r\n", "ZT-100000001"),
        ("\u00a0ZT-100000001\u2003", "ZT-100000001"),  # no-break and em spaces from a paste
        ("zt-100000001", "zt-100000001"),  # case is kept: WARP's value is the record
        ("ZT 100000001", "ZT 100000001"),  # inner characters are kept
        ("   ", None),
        ("", None),
        (None, None),
        (100000001, None),
    ],
)
def test_normalize_ban(raw: object, ban: str | None) -> None:
    assert normalize_ban(raw) == ban


@pytest.mark.parametrize(
    ("ban", "problem"),
    [
        ("ZT-1\x002", "NUL"),
        ("ZT-1\ud800", "surrogate"),
        ("ZT-1\x072", "control character"),
        ("B" * (MAX_BAN_LENGTH + 1), f"longer than {MAX_BAN_LENGTH}"),
    ],
)
def test_unusable_bans_say_why(ban: str, problem: str) -> None:
    reason = ban_problem(ban)
    assert reason is not None
    assert problem in reason
    assert usable_ban(ban) is None
    assert "\x00" not in shown(ban)
    assert len(shown(ban)) <= 41


def test_usable_bans() -> None:
    assert ban_problem("B" * MAX_BAN_LENGTH) is None
    assert usable_ban(" ZT-1 ") == "ZT-1"
    assert usable_ban("  ") is None
