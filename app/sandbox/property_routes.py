"""The CRM properties API for companies: definitions and groups, as hubsync's bootstrap uses it.

The same handlers answer under `/crm/v3/properties/{objectType}` and the date-based
`/crm/properties/2026-03/{objectType}`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.sandbox.clock import now_iso
from app.sandbox.company_inputs import batch_inputs
from app.sandbox.errors import ApiError, JsonDict, bad_request
from app.sandbox.fields import (
    DATA_SENSITIVITIES,
    bool_param,
    enum_param,
    object_body,
    optional_bool,
    optional_enum,
)
from app.sandbox.properties import PropertyRegistry, check_definition
from app.sandbox.request_io import batch_envelope, json_body, sandbox_of

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
    return object_body(await json_body(request))


def _read_params(request: Request) -> bool:
    """The query of a read: `archived` (returned) and `dataSensitivity`, typed."""
    enum_param(request, "dataSensitivity", DATA_SENSITIVITIES)
    return bool_param(request, "archived")


def input_definitions(body: object) -> list[dict[str, object]]:
    inputs = batch_inputs(body)
    if not all(isinstance(item, dict) for item in inputs):
        raise bad_request("Each input must be a JSON object")
    return inputs


async def list_properties(request: Request) -> Response:
    registry = _registry(request)
    chosen = registry.archived if _read_params(request) else registry.properties
    return JSONResponse({"results": [p.to_json() for p in chosen.values()]})


async def create_property(request: Request) -> Response:
    prop = _registry(request).create(await _object_body(request))
    return JSONResponse(prop.to_json(), status_code=201)


async def get_property(request: Request) -> Response:
    registry = _registry(request)
    prop = registry.require(request.path_params["name"], archived=_read_params(request))
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
    definitions = input_definitions(await json_body(request))
    for definition in definitions:  # a mistyped input refuses the whole batch
        check_definition(definition, creating=True)
    for definition in definitions:
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
    body = object_body(await json_body(request))
    archived = optional_bool(body, "archived")
    optional_enum(body, "dataSensitivity", DATA_SENSITIVITIES)
    chosen = registry.archived if archived else registry.properties
    for name in _names(body):
        prop = chosen.get(name)
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


def _names(body: object) -> list[str]:
    names = [item.get("name") for item in input_definitions(body)]
    if not all(isinstance(name, str) for name in names):
        raise bad_request("Each input needs a `name` (a string)")
    return [str(name) for name in names]


async def archive_property(request: Request) -> Response:
    _registry(request).archive(request.path_params["name"])
    return Response(status_code=204)


async def batch_archive_properties(request: Request) -> Response:
    registry = _registry(request)
    registry.archive_names(_names(await json_body(request)))
    return Response(status_code=204)


async def archive_group(request: Request) -> Response:
    _registry(request).archive_group(request.path_params["name"])
    return Response(status_code=204)


def property_routes(prefix: str) -> list[Route]:
    # Groups and batches come first: otherwise `/groups` would be read as a property name.
    return [
        Route(f"{prefix}/groups", list_groups, methods=["GET"]),
        Route(f"{prefix}/groups", create_group, methods=["POST"]),
        Route(f"{prefix}/groups/{{name}}", get_group, methods=["GET"]),
        Route(f"{prefix}/groups/{{name}}", update_group, methods=["PATCH"]),
        Route(f"{prefix}/groups/{{name}}", archive_group, methods=["DELETE"]),
        Route(f"{prefix}/batch/create", batch_create_properties, methods=["POST"]),
        Route(f"{prefix}/batch/read", batch_read_properties, methods=["POST"]),
        Route(f"{prefix}/batch/archive", batch_archive_properties, methods=["POST"]),
        Route(prefix, list_properties, methods=["GET"]),
        Route(prefix, create_property, methods=["POST"]),
        Route(f"{prefix}/{{name}}", get_property, methods=["GET"]),
        Route(f"{prefix}/{{name}}", update_property, methods=["PATCH"]),
        Route(f"{prefix}/{{name}}", archive_property, methods=["DELETE"]),
    ]
