"""A database outage is a 503 with Retry-After on every route, never a 500."""

from __future__ import annotations

import uuid

import yaml

from app.main import create_app
from app.settings import Settings
from app.sync.core.rules import DEFAULT_RULES, rule_to_dict
from tests.support import running
from tests.unit.test_openapi import DOCUMENT
from tests.webhook_support import BASE, change, encode, v3_headers

TOKEN = "ops-token-for-tests"
CUSTOMER = str(uuid.uuid4())
VALID_BODIES = {
    ("POST", "/v1/sync/customers/{customer_id}/queue"): {"priority": 5},
    ("POST", "/v1/sync/customers/queue"): {"customer_ids": [CUSTOMER]},
    ("POST", "/v1/sync/process-queue"): {},
    ("POST", "/v1/webhooks/events/reprocess"): {"status": "failed"},
    ("POST", "/v1/sync/customers/{customer_id}/relink"): {"action": "split"},
    ("POST", "/v1/sync/conflicts/{conflict_id}/resolve"): {"choice": "WARP"},
    ("POST", "/v1/sync/failed/retry"): {"job_ids": [1]},
    ("POST", "/v1/reconciliation/runs"): {"mode": "dry_run"},
    ("PUT", "/v1/sync/config"): {"rules": [rule_to_dict(rule) for rule in DEFAULT_RULES]},
}


def operations() -> list[tuple[str, str]]:
    document = yaml.safe_load(DOCUMENT.read_text())
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


async def test_every_route_answers_503_with_retry_after_when_the_database_is_down() -> None:
    settings = Settings.from_mapping(
        {
            "HUBSYNC_MODE": "demo",
            "HUBSYNC_DATABASE_URL": "postgresql://nobody:pw@127.0.0.1:1/none",
            "HUBSYNC_WORKER": "false",
            "HUBSYNC_SCHEDULER": "false",
            "HUBSYNC_API_TOKENS": TOKEN,
            "HUBSPOT_CLIENT_SECRET": "test-client-secret-not-real",
        }
    )
    answers = {}
    async with running(create_app(settings), base_url=BASE) as client:
        for method, template in operations():
            path = (
                template.replace("{customer_id}", CUSTOMER)
                .replace("{job_id}", "1")
                .replace("{direction}", "outbound")
                .replace("{conflict_id}", "1")
                .replace("{run_id}", "1")
            )
            if path.startswith("/v1/webhooks/hubspot"):
                body = encode([change(501)])
                response = await client.post(
                    path, content=body, headers=v3_headers(body, BASE + path)
                )
            else:
                response = await client.request(
                    method,
                    path,
                    json=VALID_BODIES.get((method, template)) if method != "GET" else None,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
            answers[method, template] = response
    assert answers.pop(("GET", "/healthz")).status_code == 200
    assert answers.pop(("GET", "/metrics")).status_code == 200  # says hubsync_database_up 0
    assert answers.pop(("GET", "/")).status_code in (307, 404)  # a pointer, no database
    assert ("PUT", "/v1/sync/config") in answers
    ready = answers.pop(("GET", "/readyz"))
    assert ready.status_code == 503
    assert ready.headers["retry-after"].isdigit()
    for operation, response in answers.items():
        assert response.status_code == 503, (operation, response.text)
        assert response.headers["retry-after"].isdigit(), operation
        assert response.json()["error"] == "unavailable", operation
