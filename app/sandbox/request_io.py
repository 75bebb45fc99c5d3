"""Reading a request's JSON body and writing HubSpot-style batch envelopes.

The typed fields of a body or a query are read with `app.sandbox.fields`; the shapes of the
companies API's inputs are in `app.sandbox.company_inputs`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from app.sandbox.clock import now_iso
from app.sandbox.errors import ApiError, JsonDict, bad_request

if TYPE_CHECKING:
    from app.sandbox.sandbox import Sandbox


def sandbox_of(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ApiError(400, "VALIDATION_ERROR", f"Invalid input JSON on line 1: {exc}") from None


def refuse_duplicate_ids(inputs: list[dict[str, Any]]) -> None:
    """HubSpot refuses a whole batch that names the same record twice."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for item in inputs:
        key = str(item.get("id"))
        if key in seen:
            duplicates.append(key)
        seen.add(key)
    if duplicates:
        raise bad_request(f"Duplicate IDs found in batch input: {duplicates}", ids=duplicates)


def batch_envelope(requested_at: str, results: list[JsonDict], errors: list[JsonDict]) -> JsonDict:
    """HubSpot's batch response; `numErrors`/`errors` appear only on a 207, as HubSpot does."""
    body: JsonDict = {
        "status": "COMPLETE",
        "results": results,
        "requestedAt": requested_at,
        "startedAt": requested_at,
        "completedAt": now_iso(),
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
    return body
