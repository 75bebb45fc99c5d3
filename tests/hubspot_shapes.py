"""HubSpot's own OpenAPI documents (kept in tests/hubspot_openapi/, see its README), for
checking the sandbox's answers against the shapes HubSpot publishes.

Two known differences between the documents and HubSpot's real behaviour are applied here, in
the open: a requested property that has no value comes back as `null`, where the documents say
every property value is a string; and some request fields the documents mark required are
optional in practice, with a default (`OPTIONAL_IN_PRACTICE`), so a request without them is
not "negative" data the sandbox must refuse. Every type stays as published: a field given with
the wrong type must still be refused.
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


# Request schemas whose `required` lists more than HubSpot enforces: the field may be left out.
OPTIONAL_IN_PRACTICE: dict[str, tuple[str, ...]] = {
    # Creating without associations is the common case (the official clients' own examples).
    "SimplePublicObjectInputForCreate": ("associations",),
    "SimplePublicObjectBatchInputForCreate": ("associations",),
    # A batch read without them answers the default properties, without history.
    "BatchReadInputSimplePublicObjectId": ("properties", "propertiesWithHistory"),
    # A first page has no `after`; filters, sorts, properties and limit all have defaults.
    "PublicObjectSearchRequest": ("after", "filterGroups", "limit", "properties", "sorts"),
    # Defaults: not archived, non_sensitive; an option is shown unless hidden.
    "BatchReadInputPropertyName": ("archived", "dataSensitivity"),
    "OptionInput": ("hidden",),
}


@functools.cache
def openapi_document(name: str) -> dict[str, Any]:
    """The document as OpenAPI 3.0, with unset property values allowed to be null and the
    request fields HubSpot does not insist on optional."""
    document = copy.deepcopy(_published(name))
    for schema in _object_schemas(document):
        schema["properties"]["properties"]["additionalProperties"]["nullable"] = True
    schemas = document["components"]["schemas"]
    for component, optional in OPTIONAL_IN_PRACTICE.items():
        if component in schemas:
            required = schemas[component].get("required", [])
            schemas[component]["required"] = [f for f in required if f not in optional]
            if not schemas[component]["required"]:
                del schemas[component]["required"]
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
