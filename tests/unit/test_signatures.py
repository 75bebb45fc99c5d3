"""HubSpot signature v1/v2/v3: known vectors, tampering, wrong secrets and the v3 time window.

The expected digests were computed once with `openssl dgst` (a different implementation from
the one under test) and are also recomputed inline with hashlib/hmac over literal strings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from app.hubspot.signatures import (
    V3Result,
    check_v3,
    normalize_v3_uri,
    sign_v1,
    sign_v2,
    sign_v3,
    verify_v1,
    verify_v2,
    verify_v3,
)

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
V1_BODY = b'[{"objectId":1,"propertyName":"name"}]'
V1_EXPECTED = "ecbf1a63da889bb923f635a42f9249fef9277cdb48f9130a51f300f001075f76"

V2_URI = "https://example.com/v1/webhooks/hubspot?x=1"
V2_BODY = b'[{"objectId":1}]'
V2_EXPECTED = "efc9bd476b1e2e86e63426b0c67b35bb6787ef8d5a22f437bd60548838c17a75"

# A query string with every escape HubSpot decodes, plus %20 which it leaves alone.
V3_URI = (
    "https://hubsync.example.com/v1/webhooks/hubspot"
    "?portal=1&tag=a%3Ab%2Fc%40d%21%24%27%28%29%2A%2C%3B&space=%20x"
)
V3_DECODED = (
    "https://hubsync.example.com/v1/webhooks/hubspot?portal=1&tag=a:b/c@d!$'()*,;&space=%20x"
)
V3_BODY = b'[{"objectId":1}]'
V3_TS = "1700000000000"
V3_EXPECTED = "Nfoto092GeCmFKrVVZ61Ny7kClQEnUDbqGhusVGtGqg="
NOW_MS = 1_700_000_000_000


def test_v1_matches_known_vector() -> None:
    inline = hashlib.sha256((SECRET + V1_BODY.decode()).encode()).hexdigest()
    assert inline == V1_EXPECTED
    assert sign_v1(SECRET, V1_BODY) == V1_EXPECTED
    assert verify_v1(SECRET, V1_BODY, V1_EXPECTED)
    assert verify_v1(SECRET, V1_BODY, V1_EXPECTED.upper())


def test_v1_refuses_tampered_body_and_wrong_secret() -> None:
    assert not verify_v1(SECRET, V1_BODY.replace(b"name", b"namf"), V1_EXPECTED)
    assert not verify_v1("another-secret", V1_BODY, V1_EXPECTED)
    assert not verify_v1(SECRET, V1_BODY, "")


def test_v2_matches_known_vector() -> None:
    inline = hashlib.sha256(f"{SECRET}POST{V2_URI}{V2_BODY.decode()}".encode()).hexdigest()
    assert inline == V2_EXPECTED
    assert sign_v2(SECRET, "POST", V2_URI, V2_BODY) == V2_EXPECTED
    assert verify_v2(SECRET, "POST", V2_URI, V2_BODY, V2_EXPECTED)


def test_v2_refuses_other_uri_method_or_body() -> None:
    assert not verify_v2(SECRET, "POST", V2_URI + "&y=2", V2_BODY, V2_EXPECTED)
    assert not verify_v2(SECRET, "GET", V2_URI, V2_BODY, V2_EXPECTED)
    assert not verify_v2(SECRET, "POST", V2_URI, V2_BODY + b" ", V2_EXPECTED)


def test_normalize_v3_uri_decodes_only_the_listed_escapes() -> None:
    assert normalize_v3_uri(V3_URI) == V3_DECODED
    assert normalize_v3_uri("/a%3ab%2fc") == "/a:b/c"  # lower-case hex too
    assert normalize_v3_uri("/a%20b%25c%2B") == "/a%20b%25c%2B"


def test_v3_matches_known_vector_with_encoded_query() -> None:
    mac = hmac.new(
        SECRET.encode(), f"POST{V3_DECODED}".encode() + V3_BODY + b"1700000000000", hashlib.sha256
    )
    inline = base64.b64encode(mac.digest()).decode()
    assert inline == V3_EXPECTED
    assert sign_v3(SECRET, "POST", V3_URI, V3_BODY, V3_TS) == V3_EXPECTED
    assert verify_v3(SECRET, "POST", V3_URI, V3_BODY, V3_TS, V3_EXPECTED, now_ms=NOW_MS)


@pytest.mark.parametrize(
    ("secret", "body", "uri", "expected"),
    [
        (SECRET, V3_BODY + b"x", V3_URI, V3Result.BAD_SIGNATURE),
        ("wrong", V3_BODY, V3_URI, V3Result.BAD_SIGNATURE),
        (SECRET, V3_BODY, V3_URI.replace("portal=1", "portal=2"), V3Result.BAD_SIGNATURE),
    ],
)
def test_v3_refuses_tampering(secret: str, body: bytes, uri: str, expected: V3Result) -> None:
    result = check_v3(secret, "POST", uri, body, V3_TS, V3_EXPECTED, now_ms=NOW_MS)
    assert result is expected
    assert not verify_v3(secret, "POST", uri, body, V3_TS, V3_EXPECTED, now_ms=NOW_MS)


@pytest.mark.parametrize(
    ("now_ms", "expected"),
    [
        (NOW_MS + 300_000, V3Result.VALID),  # exactly five minutes old: still fresh
        (NOW_MS + 300_001, V3Result.STALE),
        (NOW_MS - 300_001, V3Result.FUTURE),
        (NOW_MS - 299_000, V3Result.VALID),
    ],
)
def test_v3_time_window(now_ms: int, expected: V3Result) -> None:
    result = check_v3(SECRET, "POST", V3_URI, V3_BODY, V3_TS, V3_EXPECTED, now_ms=now_ms)
    assert result is expected


def test_v3_stale_even_with_correct_signature() -> None:
    old = str(NOW_MS - 3_600_000)
    signature = sign_v3(SECRET, "POST", V3_URI, V3_BODY, old)
    assert check_v3(SECRET, "POST", V3_URI, V3_BODY, old, signature, now_ms=NOW_MS) is (
        V3Result.STALE
    )


def test_v3_malformed_timestamp() -> None:
    for bad in ("", "soon", "nan"):
        result = check_v3(SECRET, "POST", V3_URI, V3_BODY, bad, V3_EXPECTED, now_ms=NOW_MS)
        assert result is V3Result.MALFORMED_TIMESTAMP


def test_v3_signs_the_raw_timestamp_string() -> None:
    # A float-looking header is signed as sent; it must not be reformatted before signing.
    ts = "1700000000000.0"
    signature = sign_v3(SECRET, "POST", V3_URI, V3_BODY, ts)
    assert signature != V3_EXPECTED
    assert verify_v3(SECRET, "POST", V3_URI, V3_BODY, ts, signature, now_ms=NOW_MS)
    assert not verify_v3(SECRET, "POST", V3_URI, V3_BODY, V3_TS, signature, now_ms=NOW_MS)
