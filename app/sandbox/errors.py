"""HubSpot's error bodies, as the sandbox answers them.

A whole-request failure uses HubSpot's `Error` shape (`status`, `message`, `correlationId`,
`category`, optional `context`/`errors`); one failed input inside a batch uses `StandardError`
(`status`, `category`, `message`, `context`, `errors`, `links`). Rate-limit refusals have their
own fixed body with `errorType`, `policyName` and a `requestId`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.responses import JSONResponse

JsonDict = dict[str, Any]


class ApiError(Exception):
    """A refusal the sandbox answers the way HubSpot would."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        context: dict[str, list[str]] | None = None,
        errors: list[JsonDict] | None = None,
        sub_category: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.context = context or {}
        self.errors = errors or []
        self.sub_category = sub_category

    def body(self) -> JsonDict:
        """The `Error` shape for a whole-request failure."""
        body: JsonDict = {
            "status": "error",
            "message": self.message,
            "correlationId": str(uuid.uuid4()),
            "category": self.category,
        }
        if self.sub_category:
            body["subCategory"] = self.sub_category
        if self.context:
            body["context"] = self.context
        if self.errors:
            body["errors"] = self.errors
        return body

    def standard_error(self, extra_context: dict[str, list[str]] | None = None) -> JsonDict:
        """The `StandardError` shape for one failed input of a batch."""
        return {
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": {**self.context, **(extra_context or {})},
            "errors": self.errors,
            "links": {},
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


class PropertyIssue:
    """One invalid property value, in the words HubSpot uses inside its validation message."""

    def __init__(self, name: str, code: str, message: str) -> None:
        self.name = name
        self.code = code
        self.message = message

    def as_legacy(self) -> JsonDict:
        return {
            "isValid": False,
            "message": self.message,
            "error": self.code,
            "name": self.name,
            "localizedErrorMessage": self.message,
        }

    def as_detail(self) -> JsonDict:
        return {
            "message": self.message,
            "code": self.code,
            "context": {"propertyName": [self.name]},
        }


def validation_error(issues: list[PropertyIssue]) -> ApiError:
    """HubSpot's 400 for bad property values: the legacy JSON list inside the message."""
    listing = json.dumps([issue.as_legacy() for issue in issues], separators=(",", ":"))
    return ApiError(
        400,
        "VALIDATION_ERROR",
        f"Property values were not valid: {listing}",
        context={"propertyName": [issue.name for issue in issues]},
        errors=[issue.as_detail() for issue in issues],
    )


def bad_request(message: str, **context: list[str]) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message, context=context or None)


def not_found(object_id: str) -> ApiError:
    return ApiError(
        404,
        "OBJECT_NOT_FOUND",
        "Object not found.  objectId are usually numeric.",
        context={"id": [object_id]},
    )


def conflict(property_name: str, value: str, existing_id: str) -> ApiError:
    return ApiError(
        409,
        "CONFLICT",
        f"A company with {property_name}={value} already exists. Existing ID: {existing_id}",
        context={"id": [existing_id], "propertyName": [property_name]},
    )


def rate_limit_body(policy: str) -> JsonDict:
    """The exact 429 body; `policy` is TEN_SECONDLY_ROLLING, SECONDLY or DAILY."""
    window = {
        "TEN_SECONDLY_ROLLING": "ten_secondly_rolling",
        "SECONDLY": "secondly",
        "DAILY": "daily",
    }[policy]
    return {
        "status": "error",
        "message": f"You have reached your {window} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "requestId": str(uuid.uuid4()),
    }
