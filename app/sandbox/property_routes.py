"""The CRM properties API for companies: definitions and groups, as hubsync's bootstrap uses it.

The same handlers answer under `/crm/v3/properties/{objectType}` and the date-based
`/crm/properties/2026-03/{objectType}`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.sandbox.clock import now_iso
from app.sandbox.errors import ApiError, JsonDict, bad_request
from app.sandbox.properties import PropertyRegistry
from app.sandbox.request_io import batch_envelope, batch_inputs, json_body, sandbox_of

PREFIXES = ("/crm/v3/properties/{object_type}", "/crm/properties/2026-03/{object_type}")
_COMPANY_TYPES = ("companies", "company", "0-2")


def _registry(request: Request) -> PropertyRegistry:
    object_type = request.path_params["object_type"]
    if object_type.lower() not in _COMPANY_TYPES:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            f"Unable to infer object type from: {object_type} (the sandbox knows companies)",
        )
    return sandbox_of(request).properties


async def _object_body(request: Request) -> dict[str, object]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    return body


def input_definitions(body: object) -> list[dict[str, object]]:
    inputs = batch_inputs(body)
    if not all(isinstance(item, dict) for item in inputs):
        raise bad_request("Each input must be a JSON object")
    return inputs


async def list_properties(request: Request) -> Response:
    registry = _registry(request)
    return JSONResponse({"results": [p.to_json() for p in registry.properties.values()]})


async def create_property(request: Request) -> Response:
    prop = _registry(request).create(await _object_body(request))
    return JSONResponse(prop.to_json(), status_code=201)


async def get_property(request: Request) -> Response:
    prop = _registry(request).require(request.path_params["name"])
    return JSONResponse(prop.to_json())


async def update_property(request: Request) -> Response:
    registry = _registry(request)
    prop = registry.update(request.path_params["name"], await _object_body(request))
    return JSONResponse(prop.to_json())


async def list_groups(request: Request) -> Response:
    return JSONResponse({"results": list(_registry(request).groups.values())})


async def create_group(request: Request) -> Response:
    group = _registry(request).create_group(await _object_body(request))
    return JSONResponse(group, status_code=201)


async def get_group(request: Request) -> Response:
    return JSONResponse(_registry(request).require_group(request.path_params["name"]))


async def update_group(request: Request) -> Response:
    registry = _registry(request)
    group = registry.update_group(request.path_params["name"], await _object_body(request))
    return JSONResponse(group)


async def batch_create_properties(request: Request) -> Response:
    requested_at = now_iso()
    registry = _registry(request)
    results: list[JsonDict] = []
    errors: list[JsonDict] = []
    for definition in input_definitions(await json_body(request)):
        try:
            results.append(registry.create(definition).to_json())
        except ApiError as exc:
            errors.append(exc.standard_error({"name": [str(definition.get("name"))]}))
    status = 207 if errors else 201
    return JSONResponse(batch_envelope(requested_at, results, errors), status_code=status)


async def batch_read_properties(request: Request) -> Response:
    requested_at = now_iso()
    registry = _registry(request)
    results: list[JsonDict] = []
    missing: list[str] = []
    for item in input_definitions(await json_body(request)):
        name = item.get("name")
        if not isinstance(name, str):
            raise bad_request("Each input needs a `name` (a string)")
        prop = registry.get(name)
        if prop is None:
            missing.append(name)
        else:
            results.append(prop.to_json())
    errors = []
    if missing:
        error = ApiError(404, "OBJECT_NOT_FOUND", "Some properties were not found")
        errors.append(error.standard_error({"names": missing}))
    status = 207 if errors else 200
    return JSONResponse(batch_envelope(requested_at, results, errors), status_code=status)


def property_routes(prefix: str) -> list[Route]:
    # Groups and batches come first: otherwise `/groups` would be read as a property name.
    return [
        Route(f"{prefix}/groups", list_groups, methods=["GET"]),
        Route(f"{prefix}/groups", create_group, methods=["POST"]),
        Route(f"{prefix}/groups/{{name}}", get_group, methods=["GET"]),
        Route(f"{prefix}/groups/{{name}}", update_group, methods=["PATCH"]),
        Route(f"{prefix}/batch/create", batch_create_properties, methods=["POST"]),
        Route(f"{prefix}/batch/read", batch_read_properties, methods=["POST"]),
        Route(prefix, list_properties, methods=["GET"]),
        Route(prefix, create_property, methods=["POST"]),
        Route(f"{prefix}/{{name}}", get_property, methods=["GET"]),
        Route(f"{prefix}/{{name}}", update_property, methods=["PATCH"]),
    ]
