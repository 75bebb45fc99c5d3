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


def object_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    return body


def string_list(body: dict[str, Any], name: str) -> list[str] | None:
    """An optional array of strings in a JSON body (None when absent or empty)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"`{name}` must be an array of strings", **{name: [str(value)]})
    return value or None


def optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"`{name}` must be a string", **{name: [str(value)]})
    return value


def optional_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise bad_request(f"`{name}` must be true or false", **{name: [str(value)]})
    return value


def int_value(raw: object, name: str, default: int) -> int:
    """An integer field of a body; a JSON number or digits, never a bool or a fraction."""
    if raw is None:
        return default
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw)
    raise bad_request(f"`{name}` must be an integer, got {raw!r}", **{name: [str(raw)]})


def object_id(raw: object, name: str = "id") -> str:
    """An object id (or unique value) as given in a batch input: a string or an integer."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)) or raw == "":
        raise bad_request(f"Each input needs an `{name}` (a string)", **{name: [str(raw)]})
    return str(raw)


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


def input_objects(inputs: list[Any]) -> list[dict[str, Any]]:
    """Batch inputs that are all objects, each with a `properties` object."""
    for item in inputs:
        input_properties(item)
    return inputs


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
