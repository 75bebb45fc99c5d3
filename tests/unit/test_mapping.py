"""Canonical values, HubSpot's strings, record paths and the email domain transform."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.sync.core.mapping import (
    MappingError,
    apply_warp_writes,
    canonical_to_warp,
    email_domain,
    get_path,
    is_blank,
    normalize,
    normalize_hubspot,
    path_column,
    set_path,
    to_hubspot,
    to_warp,
    warp_column_updates,
)
from app.sync.core.rules import DEFAULT_RULES, FieldRule

RULES = {rule.warp_field: rule for rule in DEFAULT_RULES}
TEXT = RULES["company_name"]
DECIMAL = RULES["credit_limit"]
BOOLEAN = RULES["services.voice.enabled"]
ENUM = RULES["customer_type"]
EMAIL = RULES["contact.email"]


@pytest.mark.parametrize("value", [None, "", " ", "\t\n"])
def test_blank_is_the_same_for_every_type(value: Any) -> None:
    assert is_blank(value)
    for rule in DEFAULT_RULES:
        assert normalize(rule, value) is None
        assert normalize_hubspot(rule, value) is None
        assert to_hubspot(rule, value) == ""  # an empty string clears a HubSpot property


@pytest.mark.parametrize("value", [0, False, "0", "false", "x"])
def test_falsy_values_are_not_blank(value: Any) -> None:
    assert not is_blank(value)


# --- decimals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [10000, "10000", "10000.00", " 10000.0 ", Decimal("1E+4"), Decimal("10000.000"), 10000.0,
     "1e4", "+10000"],
    ids=repr,
)  # fmt: skip
def test_decimal_spellings_are_one_value(value: Any) -> None:
    assert normalize(DECIMAL, value) == "10000"
    assert normalize_hubspot(DECIMAL, value) == "10000"


@pytest.mark.parametrize(
    ("value", "canonical"),
    [(0.1, "0.1"), ("0.10", "0.1"), (Decimal("-0.00"), "0"), ("-0", "0"), ("1E-5", "0.00001"),
     (Decimal("12.50"), "12.5"), ("-3.750", "-3.75"), ("123456789012345678901234567890.5",
     "123456789012345678901234567890.5")],
    ids=repr,
)  # fmt: skip
def test_decimal_canonical_form_has_no_drift(value: Any, canonical: str) -> None:
    assert normalize(DECIMAL, value) == canonical


@pytest.mark.parametrize(
    "value", ["abc", "1,000", "1_000", "NaN", "Infinity", "-inf", True, "1e999", [1], "12 3"],
    ids=repr,
)  # fmt: skip
def test_bad_decimal_raises_naming_the_field(value: Any) -> None:
    with pytest.raises(MappingError, match=r"^credit_limit: ") as caught:
        normalize(DECIMAL, value)
    assert caught.value.field == "credit_limit"


@pytest.mark.parametrize(
    "value",
    [Decimal("sNaN"), Decimal("NaN"), "NaN", "1_000", Decimal("1E+100"), "abc", True, 1.5e300],
    ids=repr,
)  # fmt: skip
def test_a_refused_number_is_refused_every_time(value: Any) -> None:
    """Numbers read once are remembered by value (`_DECIMAL_TEXT`): only those that were
    read; a refused one is refused again, and a signalling NaN (which cannot be hashed) too."""
    for _ in range(2):
        with pytest.raises(MappingError):
            normalize(DECIMAL, value)


def test_a_remembered_number_keeps_its_type_apart() -> None:
    """Decimal("1") and "1" share a canonical text, the boolean True (== 1) is refused: the
    table of numbers read is by value and type, never by equality alone."""
    assert normalize(DECIMAL, Decimal("1.0")) == normalize(DECIMAL, "1.00") == "1"
    with pytest.raises(MappingError, match="boolean"):
        normalize(DECIMAL, True)
    assert normalize(DECIMAL, 1) == "1"
    assert normalize(DECIMAL, Decimal("1.0")) == "1"  # and again, from the table


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4,
                   min_value=Decimal("-1e15"), max_value=Decimal("1e15")))  # fmt: skip
def test_decimal_round_trips_through_hubspot_exactly(number: Decimal) -> None:
    sent = to_hubspot(DECIMAL, number)
    back = to_warp(DECIMAL, sent)
    assert isinstance(back, Decimal)
    assert back == number
    assert normalize(DECIMAL, back) == normalize(DECIMAL, number) == sent
    assert normalize(DECIMAL, sent) == sent  # canonical values normalize to themselves


# --- booleans -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "canonical"),
    [(True, "true"), (False, "false"), ("true", "true"), ("True", "true"), (" FALSE ", "false"),
     ("1", "true"), ("0", "false"), (1, "true"), (0, "false"), ("yes", "true")],
    ids=repr,
)  # fmt: skip
def test_boolean_spellings(value: Any, canonical: str) -> None:
    assert normalize(BOOLEAN, value) == canonical


@pytest.mark.parametrize("value", ["maybe", 2, "t", 1.0], ids=repr)
def test_bad_boolean_raises(value: Any) -> None:
    with pytest.raises(MappingError, match=r"services\.voice\.enabled: .* is not a boolean"):
        normalize(BOOLEAN, value)


@pytest.mark.parametrize(("hubspot", "warp"), [("true", True), ("false", False), ("", None)])
def test_boolean_round_trip(hubspot: str, warp: bool | None) -> None:
    assert to_warp(BOOLEAN, hubspot) is warp
    assert to_hubspot(BOOLEAN, warp) == hubspot


# --- text and enumerations ------------------------------------------------------------------


def test_text_is_stripped_but_keeps_case_and_inner_spaces() -> None:
    assert normalize(TEXT, "  Acme  Corp ") == "Acme  Corp"
    assert normalize_hubspot(TEXT, "Acme  Corp") == "Acme  Corp"
    assert to_warp(TEXT, " Acme ") == "Acme"


def test_text_refuses_structures() -> None:
    with pytest.raises(MappingError, match="company_name: expected text, got dict"):
        normalize(TEXT, {"a": 1})


@pytest.mark.parametrize("option", ["PREPAID", "POSTPAID", "RESELLER"])
def test_default_enumeration_round_trips(option: str) -> None:
    assert normalize(ENUM, option) == option
    assert to_hubspot(ENUM, option) == option
    assert to_warp(ENUM, option) == option
    assert normalize(ENUM, option.lower()) == option  # case aside, an option is an option


def test_enumeration_maps_between_spellings() -> None:
    rule = replace(ENUM, value_map={"PREPAID": "prepaid_customer", "POSTPAID": "postpaid"})
    assert normalize(rule, "PREPAID") == "PREPAID"
    assert normalize_hubspot(rule, "prepaid_customer") == "PREPAID"
    assert to_hubspot(rule, "PREPAID") == "prepaid_customer"
    assert to_warp(rule, "postpaid") == "POSTPAID"
    with pytest.raises(MappingError, match="'prepaid_customer' is not a WARP option"):
        normalize(rule, "prepaid_customer")
    with pytest.raises(MappingError, match="customer_type: 'RESELLER' is not a HubSpot option"):
        normalize_hubspot(rule, "RESELLER")


# --- email domain ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "domain"),
    [("billing@acme.com", "acme.com"), (" Billing@ACME.Com ", "acme.com"),
     ("a@b@sub.acme.co.uk", "sub.acme.co.uk"), ("ops@acme.com.", "acme.com"),
     ("acme.com", "acme.com"), ("x@live-nation.com", "live-nation.com"),
     ("x@yahoo-partners.com", "yahoo-partners.com"), ("x@gmail.company.io", "gmail.company.io")],
    ids=repr,
)  # fmt: skip
def test_email_domain(email: str, domain: str) -> None:
    assert normalize(EMAIL, email) == domain
    assert to_hubspot(EMAIL, email) == domain


@pytest.mark.parametrize(
    "email",
    ["someone@gmail.com", "x@GoogleMail.com", "x@yahoo.com", "x@yahoo.co.uk", "x@hotmail.fr",
     "x@outlook.com", "x@live.com", "x@msn.com", "x@aol.com", "x@icloud.com", "x@me.com",
     "x@mac.com", "x@gmx.de", "x@gmx.at", "x@web.de", "x@proton.me", "x@protonmail.com",
     "x@yandex.ru", "x@mail.ru", "x@zoho.com"],
)  # fmt: skip
def test_free_mail_gives_no_domain(email: str) -> None:
    assert normalize(EMAIL, email) is None
    assert to_hubspot(EMAIL, email) == ""


@pytest.mark.parametrize("email", ["@acme.com", "billing@", "billing@acme", "not an email", 42])
def test_bad_email_raises(email: Any) -> None:
    with pytest.raises(MappingError, match=r"^contact\.email: "):
        email_domain("contact.email", email)
    with pytest.raises(MappingError):
        normalize(EMAIL, email)


def test_hubspot_domain_is_compared_lower_cased_and_free_mail_is_kept_visible() -> None:
    assert normalize_hubspot(EMAIL, "ACME.com") == "acme.com"
    # A free-mail domain typed in HubSpot is not blank: WARP's "none" will clear it.
    assert normalize_hubspot(EMAIL, "gmail.com") == "gmail.com"


def test_lossy_transform_never_writes_warp() -> None:
    with pytest.raises(MappingError, match="lossy"):
        to_warp(EMAIL, "acme.com")


# --- every default rule round-trips HubSpot's strings ---------------------------------------

HUBSPOT_STRINGS = {
    "ban": "ZT-487392012",
    "company_name": "Acme Telecom",
    "status": "SUSPENDED",
    "credit_limit": "10000.5",
    "current_balance": "-12.25",
    "customer_type": "RESELLER",
    "services.voice.enabled": "true",
    "services.messaging.enabled": "false",
    "services.data.enabled": "true",
}


@pytest.mark.parametrize("rule", DEFAULT_RULES, ids=lambda rule: rule.warp_field)
def test_hubspot_string_round_trip(rule: FieldRule) -> None:
    if rule.transform:
        assert normalize_hubspot(rule, "acme.com") == normalize(rule, "ops@acme.com")
        return
    sent = HUBSPOT_STRINGS[rule.warp_field]
    warp_value = to_warp(rule, sent)
    assert to_hubspot(rule, warp_value) == sent
    assert normalize(rule, warp_value) == normalize_hubspot(rule, sent)
    assert canonical_to_warp(rule, normalize_hubspot(rule, sent)) == warp_value


def test_warp_python_types() -> None:
    assert to_warp(DECIMAL, "10000.00") == Decimal("10000")
    assert isinstance(to_warp(DECIMAL, "1"), Decimal)
    assert to_warp(BOOLEAN, "true") is True
    assert to_warp(TEXT, "") is None


@given(st.text(max_size=30))
def test_text_normalization_is_idempotent(text: str) -> None:
    once = normalize(TEXT, text)
    assert normalize(TEXT, once) == once
    assert normalize_hubspot(TEXT, to_hubspot(TEXT, text)) == once


# --- paths into records ---------------------------------------------------------------------


def test_get_path_reads_dicts_and_json_text() -> None:
    record = {"contact": json.dumps({"email": "a@acme.com"}),
              "services": {"voice": {"enabled": True}}}  # fmt: skip
    assert get_path(record, "contact.email") == "a@acme.com"
    assert get_path(record, "services.voice.enabled") is True
    assert get_path(record, "services.data.enabled") is None
    assert get_path({"contact": None}, "contact.email") is None
    assert get_path({"contact": "null"}, "contact.email") is None
    assert get_path({}, "company_name") is None


@pytest.mark.parametrize("contact", ["{not json", "[1, 2]", 7], ids=repr)
def test_get_path_refuses_a_column_that_is_not_an_object(contact: Any) -> None:
    with pytest.raises(MappingError, match=r"^contact\.email: contact is"):
        get_path({"contact": contact}, "contact.email")


def test_set_path_returns_a_new_record_keeping_other_keys() -> None:
    record = {"ban": "ZT-1", "services": json.dumps({"voice": {"enabled": True}})}
    updated = set_path(record, "services.data.enabled", False)
    services = {"voice": {"enabled": True}, "data": {"enabled": False}}
    assert updated == {"ban": "ZT-1", "services": services}
    assert record["services"] == json.dumps({"voice": {"enabled": True}})  # untouched
    assert set_path({}, "company_name", "Acme") == {"company_name": "Acme"}


def test_set_path_refuses_to_replace_a_scalar_with_an_object() -> None:
    with pytest.raises(MappingError, match=r"services\.voice is bool"):
        set_path({"services": {"voice": True}}, "services.voice.enabled", True)


def test_writes_to_warp_become_column_updates() -> None:
    record = {"credit_limit": Decimal("100"), "services": {"voice": {"enabled": True}}}
    rules = [DECIMAL, BOOLEAN]
    writes = {"credit_limit": "250.5", "services.voice.enabled": "false"}
    assert warp_column_updates(rules, record, writes) == {
        "credit_limit": Decimal("250.5"),
        "services": {"voice": {"enabled": False}},
    }
    assert apply_warp_writes(rules, record, {})["credit_limit"] == Decimal("100")
    assert path_column("services.voice.enabled") == "services"
