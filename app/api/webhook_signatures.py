"""Which HubSpot signature a webhook request carries, over which URI, and whether it holds.

The cryptography is `app/hubspot/signatures.py`; this module only reads the request: the
headers, and the URI HubSpot signed — the public URL it called (HUBSYNC_PUBLIC_URL, behind a
proxy) or else the URL the request reached, with the path exactly as sent (raw, still
percent-encoded) and the query string. A refusal is a 401 that names the check that failed,
never the secret or the signature that was expected.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from app.api.errors import ApiError
from app.hubspot.signatures import (
    V3_MAX_AGE_MS,
    V3Result,
    check_v3,
    check_v3_timestamp,
    verify_v1,
    verify_v2,
)

V3_SIGNATURE = "X-HubSpot-Signature-v3"
V3_TIMESTAMP = "X-HubSpot-Request-Timestamp"
LEGACY_SIGNATURE = "X-HubSpot-Signature"
LEGACY_VERSION = "X-HubSpot-Signature-Version"

_V3_REFUSALS = {
    V3Result.BAD_SIGNATURE: "the v3 signature does not match the request",
    V3Result.STALE: (
        f"{V3_TIMESTAMP} is older than {V3_MAX_AGE_MS // 60000} minutes (a stale or replayed "
        "request)"
    ),
    V3Result.FUTURE: f"{V3_TIMESTAMP} is more than {V3_MAX_AGE_MS // 60000} minutes in the future",
    V3Result.MALFORMED_TIMESTAMP: f"{V3_TIMESTAMP} is not epoch milliseconds",
}


def signed_uri(request: Request, public_url: str | None) -> str:
    """The URI as HubSpot called it: scheme, host, raw path and query."""
    scope = request.scope
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    path = raw_path.decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    base = public_url.rstrip("/") if public_url else _origin(request)
    return base + path + (f"?{query}" if query else "")


# A Host header of a name or IPv4 address and perhaps a port: taken as it is. Anything else
# (no Host, an IPv6 literal, odd characters) is left to Starlette's `request.url`, which
# validates it and may fall back to the server's address.
_PLAIN_HOST = re.compile(r"[A-Za-z0-9.-]+(?::([0-9]{1,5}))?")


def _origin(request: Request) -> str:
    """`scheme://netloc` as `request.url` gives it. Every delivery asks, and building
    `request.url` parses the Host header and then a whole URL for it; a plain Host header
    (nearly every request) is read from the scope as it is."""
    scope = request.scope
    scheme = scope.get("scheme", "http")
    if scheme in ("http", "https"):
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                plain = _PLAIN_HOST.fullmatch(host)
                if plain is not None and int(plain[1] or 0) <= 65535:
                    return f"{scheme}://{host}"
                break
    return f"{request.url.scheme}://{request.url.netloc}"


def _refuse(check: str) -> ApiError:
    return ApiError(401, f"webhook signature refused: {check}", code="invalid_signature")


def precheck_headers(request: Request, *, accepted: tuple[str, ...]) -> None:
    """Refuse (401) before the body is read: no signature header of an accepted version, or
    a v3 timestamp that is malformed, stale or in the future. Costs a forger nothing to
    pass, but costs hubsync nothing to refuse everyone who does not."""
    headers = request.headers
    if headers.get(V3_SIGNATURE) is not None and "v3" in accepted:
        timestamp = headers.get(V3_TIMESTAMP)
        if timestamp is None:
            raise _refuse(f"{V3_SIGNATURE} is present but {V3_TIMESTAMP} is missing")
        refused = check_v3_timestamp(timestamp.strip())
        if refused is not None:
            raise _refuse(_V3_REFUSALS[refused])
        return
    if headers.get(LEGACY_SIGNATURE) is None:
        raise _refuse(f"no accepted signature header; expected {_wanted(accepted)}")


def _wanted(accepted: tuple[str, ...]) -> str:
    return " or ".join(
        f"{V3_SIGNATURE} with {V3_TIMESTAMP}" if v == "v3" else f"{LEGACY_SIGNATURE} ({v})"
        for v in accepted
    )


def verify_request(
    request: Request,
    body: bytes,
    secret: str,
    *,
    accepted: tuple[str, ...],
    public_url: str | None,
) -> None:
    """Raise a 401 unless the request carries a valid signature of an accepted version.

    v3 is checked whenever its header is present and v3 is accepted (a bad v3 signature is not
    rescued by a v1 one beside it); v1/v2 only when listed in HUBSPOT_WEBHOOK_SIGNATURES.
    """
    headers = request.headers
    v3_signature = headers.get(V3_SIGNATURE)
    if v3_signature is not None and "v3" in accepted:
        timestamp = headers.get(V3_TIMESTAMP)
        if timestamp is None:
            raise _refuse(f"{V3_SIGNATURE} is present but {V3_TIMESTAMP} is missing")
        result = check_v3(
            secret,
            request.method,
            signed_uri(request, public_url),
            body,
            timestamp.strip(),
            v3_signature,
        )
        if result is not V3Result.VALID:
            raise _refuse(_V3_REFUSALS[result])
        return
    legacy = headers.get(LEGACY_SIGNATURE)
    if legacy is None:
        raise _refuse(f"no accepted signature header; expected {_wanted(accepted)}")
    version = (headers.get(LEGACY_VERSION) or "v1").strip().lower()
    if version not in ("v1", "v2"):
        raise _refuse(f"{LEGACY_VERSION} {version!r} is not v1 or v2")
    if version not in accepted:
        raise _refuse(
            f"signature version {version} is not accepted here (HUBSPOT_WEBHOOK_SIGNATURES="
            f"{','.join(accepted)})"
        )
    if version == "v1":
        valid = verify_v1(secret, body, legacy)
    else:
        valid = verify_v2(secret, request.method, signed_uri(request, public_url), body, legacy)
    if not valid:
        raise _refuse(f"the {version} signature does not match the request")
