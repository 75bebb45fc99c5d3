"""HubSpot request signatures: computing (for the sandbox) and verifying (for webhook intake).

Three versions exist. v1 and v2 are hex SHA-256 digests of the client secret followed by the
request parts; v3 is a base64 HMAC-SHA256 over method, URI, body and the timestamp header,
keyed by the client secret, with a five-minute freshness window. Every function works on the
raw request bytes, before any JSON parsing, because re-serialised JSON never signs the same.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import re
import time

V3_MAX_AGE_MS = 5 * 60 * 1000

# HubSpot decodes exactly these escapes in the URI before signing v3; any other escape
# (for example %20) stays as sent.
_V3_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_V3_ESCAPE = re.compile("|".join(_V3_DECODED), re.IGNORECASE)


class V3Result(enum.Enum):
    """Why a v3 signature was accepted or refused."""

    VALID = "valid"
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"
    FUTURE = "future"
    MALFORMED_TIMESTAMP = "malformed_timestamp"


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def sign_v1(secret: str, body: bytes | str) -> str:
    return hashlib.sha256(secret.encode("utf-8") + _as_bytes(body)).hexdigest()


def sign_v2(secret: str, method: str, uri: str, body: bytes | str) -> str:
    source = (secret + method.upper() + uri).encode("utf-8") + _as_bytes(body)
    return hashlib.sha256(source).hexdigest()


def normalize_v3_uri(uri: str) -> str:
    """Decode only the escapes HubSpot decodes before signing v3 (case-insensitively)."""
    return _V3_ESCAPE.sub(lambda match: _V3_DECODED[match[0].upper()], uri)


def sign_v3(secret: str, method: str, uri: str, body: bytes | str, timestamp: str) -> str:
    """The `X-HubSpot-Signature-v3` value; `uri` is the full URL as called (it is normalised)."""
    source = (
        (method.upper() + normalize_v3_uri(uri)).encode("utf-8")
        + _as_bytes(body)
        + timestamp.encode("utf-8")
    )
    digest = hmac.new(secret.encode("utf-8"), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("utf-8"), given.strip().encode("utf-8"))


def verify_v1(secret: str, body: bytes | str, signature: str) -> bool:
    return _same(sign_v1(secret, body), signature.lower())


def verify_v2(secret: str, method: str, uri: str, body: bytes | str, signature: str) -> bool:
    return _same(sign_v2(secret, method, uri, body), signature.lower())


def check_v3_timestamp(
    timestamp: str, *, now_ms: int | None = None, max_age_ms: int = V3_MAX_AGE_MS
) -> V3Result | None:
    """Why the v3 timestamp header is refused, or None when it is fresh: checkable before
    the body is read."""
    if len(timestamp) > 32:  # float() of a long string costs; no real timestamp is that long
        return V3Result.MALFORMED_TIMESTAMP
    try:
        sent_ms = float(timestamp)
    except ValueError:
        return V3Result.MALFORMED_TIMESTAMP
    if math.isnan(sent_ms):  # NaN would pass neither window check and fail silently
        return V3Result.MALFORMED_TIMESTAMP
    now = time.time() * 1000 if now_ms is None else now_ms
    if sent_ms < now - max_age_ms:
        return V3Result.STALE
    if sent_ms > now + max_age_ms:
        return V3Result.FUTURE
    return None


def check_v3(  # noqa: PLR0917 - the signed parts in HubSpot's order read best positionally
    secret: str,
    method: str,
    uri: str,
    body: bytes | str,
    timestamp: str,
    signature: str,
    *,
    now_ms: int | None = None,
    max_age_ms: int = V3_MAX_AGE_MS,
) -> V3Result:
    """Verify a v3 signature and say why it failed, if it did.

    The timestamp header is epoch milliseconds; it is signed as the raw header string, so a
    float-looking value still verifies as long as it is fresh.
    """
    refused = check_v3_timestamp(timestamp, now_ms=now_ms, max_age_ms=max_age_ms)
    if refused is not None:
        return refused
    if not _same(sign_v3(secret, method, uri, body, timestamp), signature):
        return V3Result.BAD_SIGNATURE
    return V3Result.VALID


def verify_v3(  # noqa: PLR0917 - same parameters as check_v3
    secret: str,
    method: str,
    uri: str,
    body: bytes | str,
    timestamp: str,
    signature: str,
    *,
    now_ms: int | None = None,
    max_age_ms: int = V3_MAX_AGE_MS,
) -> bool:
    result = check_v3(
        secret, method, uri, body, timestamp, signature, now_ms=now_ms, max_age_ms=max_age_ms
    )
    return result is V3Result.VALID
