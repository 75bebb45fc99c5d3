"""PUT /v1/sync/config checks rules against the WARP table's real columns."""

from __future__ import annotations

from typing import Any

import pytest

from app.sync.core.rules import DEFAULT_RULES, rule_to_dict
from tests.conftest import Database
from tests.integration.test_config_api import TOKEN, app_for
from tests.support import running


def defaults_plus(*extra: dict[str, Any]) -> dict[str, Any]:
    return {"rules": [rule_to_dict(rule) for rule in DEFAULT_RULES] + list(extra)}


def rule(warp_field: str, prop: str, value_type: str = "text") -> dict[str, Any]:
    return {
        "warp_field": warp_field,
        "hubspot_property": prop,
        "value_type": value_type,
        "direction": "WARP_TO_HUBSPOT",
        "authority": "WARP",
    }


@pytest.mark.parametrize(
    ("extra", "replaces", "field", "words"),
    [
        (rule("nickname", "warp_nickname"), None, "nickname", "no column 'nickname'"),
        (rule("contact", "warp_contact"), None, "contact.email", "lies inside 'contact'"),
        (rule("status.first", "warp_first"), "warp_status", "status.first", "is not JSON"),
        (rule("status", "warp_status2", "boolean"), "warp_status", "status", "does not fit column"),
    ],
)
async def test_rules_that_do_not_fit_the_real_table_are_422(
    db: Database, extra: dict[str, Any], replaces: str | None, field: str, words: str
) -> None:
    body = defaults_plus(extra)
    if replaces is not None:  # instead of the default rule on that column
        body["rules"] = [r for r in body["rules"] if r["hubspot_property"] != replaces]
    async with running(app_for(db)) as client:
        response = await client.put("/v1/sync/config", json=body, headers=TOKEN)
        after = await client.get("/v1/sync/config", headers=TOKEN)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert words in response.json()["detail"]
    assert after.json()["rules"] == [rule_to_dict(r) for r in DEFAULT_RULES]


async def test_a_rule_on_a_real_json_path_is_accepted(db: Database) -> None:
    body = defaults_plus(rule("contact.phone", "phone"))
    async with running(app_for(db)) as client:
        response = await client.put("/v1/sync/config", json=body, headers=TOKEN)
    assert response.status_code == 200, response.text
