"""Schemathesis with HubSpot's own OpenAPI documents (v3 and 2026-03) against the sandbox.

Bounded: a fixed number of generated requests per operation, positive and negative (requests
that break the documents' schemas). Every answer must be one HubSpot's document allows, with
its shape, and none may be a 5xx.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
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
    return schema


companies_v3 = _schema(COMPANIES_V3)
companies_2026_03 = _schema(COMPANIES_2026_03)
properties_v3 = _schema(PROPERTIES_V3)

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
    case.call_and_validate(headers=AUTH, checks=CHECKS)


@companies_2026_03.parametrize()
@HYPOTHESIS
def test_companies_2026_03(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH, checks=CHECKS)


@properties_v3.parametrize()
@HYPOTHESIS
def test_properties_v3(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH, checks=CHECKS)


def test_the_fuzzing_reached_the_sandbox_positive_and_negative() -> None:
    """The generated requests did arrive: some accepted, many refused 4xx, none a 5xx."""
    for schema in (companies_v3, companies_2026_03, properties_v3):
        statuses = schema.app.state.sandbox.stats()["responses_by_status"]
        codes = {int(code): n for code, n in statuses.items()}
        assert sum(n for code, n in codes.items() if 200 <= code < 300) > 0, (schema, codes)
        assert codes.get(400, 0) > 0, codes
        assert not [code for code in codes if code >= 500], codes
