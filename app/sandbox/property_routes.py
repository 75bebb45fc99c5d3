"""The CRM properties API for companies: definitions and groups, as hubsync's bootstrap uses it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.sandbox.errors import ApiError, bad_request
from app.sandbox.properties import PropertyRegistry
from app.sandbox.requests import json_body, sandbox_of

PREFIX = "/crm/v3/properties/{object_type}"
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


def property_routes() -> list[Route]:
    # Groups come first: otherwise `/groups` would be read as a property named "groups".
    return [
        Route(f"{PREFIX}/groups", list_groups, methods=["GET"]),
        Route(f"{PREFIX}/groups", create_group, methods=["POST"]),
        Route(f"{PREFIX}/groups/{{name}}", get_group, methods=["GET"]),
        Route(f"{PREFIX}/groups/{{name}}", update_group, methods=["PATCH"]),
        Route(PREFIX, list_properties, methods=["GET"]),
        Route(PREFIX, create_property, methods=["POST"]),
        Route(f"{PREFIX}/{{name}}", get_property, methods=["GET"]),
        Route(f"{PREFIX}/{{name}}", update_property, methods=["PATCH"]),
    ]
