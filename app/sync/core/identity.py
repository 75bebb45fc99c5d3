"""The billing account number (ban) as an identity: the one normalisation every comparison of
bans goes through, and what makes a ban unusable.

A ban is compared in several places — the engine pairing a company with its customer, the
reconciliation, webhook routing and the catch-up (through the jobs they queue) — and they
must agree, or one finds a company another does not and a second company is created. A CRM
user types `"ZT-100000001 "`, a paste brings a tab or a no-break space; none of that is part
of the number. Case and inner characters are kept: they may be, and WARP's column is the
record.
"""

from __future__ import annotations

import re
from typing import Final

# No billing account number is this long; past it a value is something pasted by mistake.
# The bound also keeps every usable ban well inside what a b-tree index entry may hold
# (hubsync indexes the ban of each link), so one absurd value can never fail a write.
MAX_BAN_LENGTH: Final = 256


def normalize_ban(value: object) -> str | None:
    """The ban as compared: surrounding whitespace (any Unicode space) removed; None when
    nothing is left or the value is not text."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


# One scan for every character a ban may not hold (checked on every company of a run).
_REFUSED = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def ban_problem(ban: str) -> str | None:
    """Why hubsync cannot use this (normalised) ban, or None: a character no database text
    column holds, or a length no real number has."""
    if (found := _REFUSED.search(ban)) is not None:
        char = found.group()
        if char == "\x00":
            return "it holds a NUL character, which no text column can store"
        if char >= "\ud800":
            return "it holds a lone UTF-16 surrogate, which is not text"
        return "it holds a control character"
    if len(ban) > MAX_BAN_LENGTH:
        return f"it is {len(ban)} characters long, longer than {MAX_BAN_LENGTH}"
    return None


def usable_ban(value: object) -> str | None:
    """The normalised ban, or None when there is none or it is unusable (`ban_problem`)."""
    ban = normalize_ban(value)
    return ban if ban is not None and ban_problem(ban) is None else None


def shown(ban: str, limit: int = 40) -> str:
    """A ban as it can be written into a reason or a report safely: escaped, and cut."""
    text = ban.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "…"
