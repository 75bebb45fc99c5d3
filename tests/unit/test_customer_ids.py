"""A customer id's canonical form (app/warp/connector.py::canonical_id): ids already canonical
are matched, not parsed, and must come out exactly as `uuid.UUID` would give them."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.warp.connector import canonical_id

REFUSED = "badly formed|invalid literal"  # uuid.UUID's two refusals of a str


def parsed(value: str) -> str:
    return str(uuid.UUID(value))


@given(st.uuids())
def test_every_form_of_a_uuid_comes_out_as_uuid_gives_it(value: uuid.UUID) -> None:
    for form in (str(value), str(value).upper(), value.hex, f"{{{value}}}", f"urn:uuid:{value}"):
        assert canonical_id(form) == parsed(form) == str(value)


@given(st.text(alphabet="0123456789abcdefABCDEF-{}:urnid \n", max_size=45) | st.text(max_size=40))
def test_any_text_is_canonical_as_uuid_says_or_refused_as_it_refuses(text: str) -> None:
    try:
        expected = parsed(text)
    except ValueError:
        with pytest.raises(ValueError, match=REFUSED):
            canonical_id(text)
    else:
        assert canonical_id(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "0000000g-0000-0000-0000-000000000000",  # a letter past f
        "00000000-0000-0000-0000-0000000000000",  # one digit too many
        "00000000_0000_0000_0000_000000000000",
    ],
)
def test_near_misses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=REFUSED):
        canonical_id(text)
