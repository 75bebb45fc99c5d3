"""Reading HubSpot-style request parameters and writing HubSpot-style batch envelopes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from app.sandbox.clock import now_iso
from app.sandbox.errors import ApiError, JsonDict, bad_request

if TYPE_CHECKING:
    from app.sandbox.sandbox import Sandbox

MAX_BATCH_INPUTS = 100


def sandbox_of(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ApiError(400, "VALIDATION_ERROR", f"Invalid input JSON on line 1: {exc}") from None


def csv_param(request: Request, name: str) -> list[str] | None:
    """A list query parameter, given repeated (`a=1&a=2`) or comma-separated (`a=1,2`)."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def bool_param(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def batch_inputs(body: Any) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise bad_request("The request body needs an `inputs` array")
    inputs: list[Any] = body["inputs"]
    if len(inputs) > MAX_BATCH_INPUTS:
        raise bad_request(
            f"Batch input size {len(inputs)} exceeds the maximum of {MAX_BATCH_INPUTS}",
            inputs=[str(len(inputs))],
        )
    return inputs


def input_properties(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("properties", {}), dict):
        raise bad_request("Each input needs a `properties` object")
    properties: dict[str, Any] = item.get("properties", {})
    return properties


def refuse_duplicate_ids(inputs: list[Any]) -> None:
    """HubSpot refuses a whole batch that names the same record twice."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for item in inputs:
        key = str(item.get("id")) if isinstance(item, dict) else ""
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
