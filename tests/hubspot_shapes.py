"""HubSpot's own OpenAPI documents (kept in tests/hubspot_openapi/, see its README), for
checking the sandbox's answers against the shapes HubSpot publishes.

One known difference between the documents and HubSpot's real answers is applied here, in the
open: a requested property that has no value comes back as `null`, where the documents say
every property value is a string.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

OPENAPI_DIR = Path(__file__).resolve().parent / "hubspot_openapi"
COMPANIES_V3 = "crm-companies-v3.json"
COMPANIES_2026_03 = "crm-companies-2026-03.json"
PROPERTIES_V3 = "crm-properties-v3.json"


@functools.cache
def _published(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((OPENAPI_DIR / name).read_text(encoding="utf-8"))
    return document


def _object_schemas(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer schemas of a CRM object (not the inputs), whose property values HubSpot
    answers as null when requested and unset."""
    schemas: dict[str, dict[str, Any]] = document["components"]["schemas"]
    return [
        schema
        for name, schema in schemas.items()
        if name.startswith("SimplePublic")
        and "Input" not in name
        and "properties" in schema.get("properties", {})
    ]


@functools.cache
def openapi_document(name: str) -> dict[str, Any]:
    """The document as OpenAPI 3.0, with unset property values allowed to be null."""
    document = copy.deepcopy(_published(name))
    for schema in _object_schemas(document):
        schema["properties"]["properties"]["additionalProperties"]["nullable"] = True
    return document


@functools.cache
def _json_schema_components(name: str) -> dict[str, Any]:
    document = copy.deepcopy(_published(name))
    for schema in _object_schemas(document):
        schema["properties"]["properties"]["additionalProperties"]["type"] = ["string", "null"]
    components: dict[str, Any] = document["components"]
    return components


def assert_shape(instance: Any, component: str, spec: str = COMPANIES_V3) -> None:
    """Validate against a component schema of HubSpot's OpenAPI document."""
    schema = {
        "$ref": f"#/components/schemas/{component}",
        "components": _json_schema_components(spec),
    }
    jsonschema.Draft7Validator(schema).validate(instance)
