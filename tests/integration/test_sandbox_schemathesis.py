"""Schemathesis with HubSpot's own OpenAPI documents (v3 and 2026-03) against the sandbox.

Bounded: a fixed number of generated requests per operation, positive and negative (requests
that break the documents' schemas). Every answer must be one HubSpot's document allows, with
its shape, and none may be a 5xx. A negative request (a field of the wrong type, a value out
of its range, a required field left out) must be refused, 400 with HubSpot's error body (404
for an object a path names that does not exist): not one may be accepted.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config._checks import NegativeDataRejectionConfig
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.sandbox.app import create_sandbox_app
from app.sandbox.config import SandboxConfig
from app.settings import RateLimit
from tests.hubspot_shapes import (
    COMPANIES_2026_03,
    COMPANIES_V3,
    PROPERTIES_V3,
    openapi_document,
)

TOKEN = "pat-schemathesis"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 20  # per operation and mode: reaches every refusal path, bounded for CI
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _sandbox_app() -> Any:
    app = create_sandbox_app(
        SandboxConfig(
            access_token=TOKEN,
            rate_limit=RateLimit(10_000_000, 10.0),
            search_rate_limit=RateLimit(10_000_000, 1.0),
            daily_limit=10_000_000,
            search_index_delay_seconds=0,
        )
    )
    sandbox = app.state.sandbox
    sandbox.properties.create_group({"name": "warp", "label": "WARP"})
    sandbox.properties.create(
        {"name": "warp_ban", "label": "BAN", "type": "string", "fieldType": "text",
         "groupName": "warp", "hasUniqueValue": True}
    )  # fmt: skip
    for n in range(3):
        sandbox.companies.create({"name": f"Seed {n}", "warp_ban": f"ZT-{n}"}, sandbox.api_source)
    return app


def _schema(name: str) -> Any:
    schema = schemathesis.openapi.from_dict(openapi_document(name))
    schema.app = _sandbox_app()
    # The sandbox holds companies only; another object type is a plain 400.
    schema.config.update(parameters={"path.objectType": "companies"})
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES
    )
    schema.config.checks.negative_data_rejection = NegativeDataRejectionConfig(
        expected_statuses=[400, 404]
    )
    return schema


companies_v3 = _schema(COMPANIES_V3)
companies_2026_03 = _schema(COMPANIES_2026_03)
properties_v3 = _schema(PROPERTIES_V3)

# Per document: negative requests sent, and those schemathesis found accepted.
NEGATIVE_SENT: Counter[str] = Counter()
NEGATIVE_ACCEPTED: Counter[str] = Counter()


def call_and_check(case: schemathesis.Case, document: str) -> None:
    response = case.call(headers=AUTH)
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    if negative:
        NEGATIVE_SENT[document] += 1
        if response.status_code in (400, 404):
            assert response.json()["category"] in ("VALIDATION_ERROR", "OBJECT_NOT_FOUND")
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        if any(isinstance(failure, AcceptedNegativeData) for failure in group.exceptions):
            NEGATIVE_ACCEPTED[document] += 1
        raise
    except AcceptedNegativeData:
        NEGATIVE_ACCEPTED[document] += 1
        raise


HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@companies_v3.parametrize()
@HYPOTHESIS
def test_companies_v3(case: schemathesis.Case) -> None:
    call_and_check(case, COMPANIES_V3)


@companies_2026_03.parametrize()
@HYPOTHESIS
def test_companies_2026_03(case: schemathesis.Case) -> None:
    call_and_check(case, COMPANIES_2026_03)


@properties_v3.parametrize()
@HYPOTHESIS
def test_properties_v3(case: schemathesis.Case) -> None:
    call_and_check(case, PROPERTIES_V3)


def test_the_fuzzing_reached_the_sandbox_positive_and_negative() -> None:
    """The generated requests did arrive: some accepted, many refused 4xx, none a 5xx."""
    for schema in (companies_v3, companies_2026_03, properties_v3):
        statuses = schema.app.state.sandbox.stats()["responses_by_status"]
        codes = {int(code): n for code, n in statuses.items()}
        assert sum(n for code, n in codes.items() if 200 <= code < 300) > 0, (schema, codes)
        assert codes.get(400, 0) > 0, codes
        assert not [code for code in codes if code >= 500], codes


def test_negative_mode_ran_and_no_wrongly_typed_request_was_accepted() -> None:
    """Counted over every generated request, not only the shrunk failure each test reports:
    negative requests reached every document, and schemathesis found none accepted. (It
    forgives negations that serialise back to valid requests, such as `properties=0` in a
    query, which is a list of one string, and unknown query parameters, which HubSpot
    ignores.)"""
    assert set(NEGATIVE_SENT) == {COMPANIES_V3, COMPANIES_2026_03, PROPERTIES_V3}, NEGATIVE_SENT
    assert all(n >= 20 for n in NEGATIVE_SENT.values()), NEGATIVE_SENT
    assert sum(NEGATIVE_ACCEPTED.values()) == 0, (NEGATIVE_ACCEPTED, NEGATIVE_SENT)
