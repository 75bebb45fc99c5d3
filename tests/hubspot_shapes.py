"""HubSpot's own OpenAPI documents (in ../shared/reference/hubspot-openapi/), for checking the
sandbox's answers against the shapes HubSpot publishes."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

OPENAPI_DIR = (
    Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "hubspot-openapi"
)


@functools.cache
def hubspot_spec(name: str) -> dict[str, Any]:
    path = OPENAPI_DIR / name
    if not path.is_file():
        message = f"HubSpot OpenAPI reference not found at {path}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)  # CI has shared/ beside the clone: the check must run
        pytest.skip(message)
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


def assert_shape(instance: Any, component: str, spec: str = "crm-companies-v3.json") -> None:
    """Validate against a component schema of HubSpot's OpenAPI document."""
    schema = {
        "$ref": f"#/components/schemas/{component}",
        "components": hubspot_spec(spec)["components"],
    }
    jsonschema.Draft7Validator(schema).validate(instance)
