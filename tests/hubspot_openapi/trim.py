"""Trim one of HubSpot's published OpenAPI documents to what hubsync's tests read.

Usage: python tests/hubspot_openapi/trim.py SOURCE.json > tests/hubspot_openapi/NAME.json

Kept as published: every path of the object or properties API except associations, every
parameter, request body, response and component schema, descriptions included. Dropped: the
per-operation OAuth scope lists and the security schemes (the sandbox takes a Bearer token; the
tests send it themselves), examples of whole documents, and HubSpot's `x-hubspot-*` extensions.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def trim(document: dict[str, Any]) -> dict[str, Any]:
    paths = {
        path: {
            method: {key: value for key, value in operation.items() if key != "security"}
            if isinstance(operation, dict)
            else operation
            for method, operation in operations.items()
            if not method.startswith("x-")
        }
        for path, operations in document["paths"].items()
        if "/associations/" not in path
    }
    components = {k: v for k, v in document["components"].items() if k != "securitySchemes"}
    return {
        "openapi": document["openapi"],
        "info": {k: v for k, v in document["info"].items() if not k.startswith("x-")},
        "servers": document.get("servers", []),
        "paths": paths,
        "components": components,
    }


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as source:
        json.dump(trim(json.load(source)), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
