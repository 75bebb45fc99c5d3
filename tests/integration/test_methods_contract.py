"""OPTIONS lists every method of a path, a wrong method is a 405 naming them all, and the
document lists the 4xx/5xx answers every route can give."""

from __future__ import annotations

import re

import yaml

from app.main import create_app
from tests.conftest import Database
from tests.integration.test_database_outage import operations
from tests.support import running
from tests.unit.test_openapi import DOCUMENT
from tests.webhook_support import settings_for

UNUSED = ("DELETE", "PATCH", "PUT", "POST", "GET")
CUSTOMER = "5f0c1d2e-3a4b-4c5d-8e6f-708192a3b4c5"
UUID = "[0-9a-f-]{36}"


def documented_methods() -> dict[str, set[str]]:
    """Per concrete path, the methods of every documented template it matches. A customer id
    is a UUID, so `/v1/sync/customers/queue` is not also `/v1/sync/customers/{customer_id}`."""
    templates: dict[str, set[str]] = {}
    for method, template in operations():
        templates.setdefault(template, set()).add(method)
    by_path: dict[str, set[str]] = {}
    for template in templates:
        path = template.replace("{customer_id}", CUSTOMER).replace("{job_id}", "1")
        by_path[path] = set().union(
            *(
                methods
                for other, methods in templates.items()
                if re.fullmatch(
                    re.sub(r"\{[a-z_]+\}", "[^/]+", other.replace("{customer_id}", UUID)), path
                )
            )
        )
    return by_path


async def test_options_lists_and_405_names_every_method_of_each_path(db: Database) -> None:
    async with running(create_app(settings_for(db))) as client:
        for path, methods in documented_methods().items():
            expected = methods | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
            options = await client.options(path)
            assert options.status_code == 204, path
            assert set(options.headers["allow"].split(", ")) == expected, path
            wrong = next(m for m in UNUSED if m not in methods)
            refused = await client.request(wrong, path)
            assert refused.status_code == 405, (wrong, path)
            assert set(refused.headers["allow"].split(", ")) == expected, path
            assert refused.json()["error"] == "method_not_allowed"
        missing = await client.get("/v1/no-such-route")
    assert missing.status_code == 404


def test_every_operation_documents_the_errors_any_route_can_give() -> None:
    document = yaml.safe_load(DOCUMENT.read_text())
    for path, item in document["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert "400" in codes, (method, path)
            if method in ("post", "put", "patch"):
                assert {"408", "413"} <= codes, (method, path)
            if path not in ("/healthz", "/metrics", "/"):  # none needs the database to answer
                assert "503" in codes, (method, path)
