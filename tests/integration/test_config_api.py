"""GET/PUT /v1/sync/config: the rules over HTTP, validated and audited."""

from __future__ import annotations

import pytest

from app.main import create_app
from app.settings import Settings
from app.store.models import SyncConfigChange
from app.sync.core.rules import DEFAULT_RULES, rule_to_dict
from tests.conftest import Database
from tests.support import running
from tests.syncenv import rows

TOKEN = {"Authorization": "Bearer ops-token"}


def app_for(db: Database):  # type: ignore[no-untyped-def]
    return create_app(
        Settings.from_mapping(
            {
                **db.env,
                "HUBSYNC_API_TOKENS": "ops-token",
                "HUBSYNC_WORKER": "false",
                "HUBSYNC_SCHEDULER": "false",
            }
        )
    )


async def test_get_returns_the_default_rules(db: Database) -> None:
    async with running(app_for(db)) as client:
        response = await client.get("/v1/sync/config", headers=TOKEN)
    assert response.status_code == 200
    assert response.json()["rules"] == [rule_to_dict(rule) for rule in DEFAULT_RULES]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}]
)
async def test_no_or_wrong_token_is_401(db: Database, headers: dict[str, str]) -> None:
    async with running(app_for(db)) as client:
        response = await client.get("/v1/sync/config", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_put_replaces_the_rules_and_records_before_and_after(db: Database) -> None:
    rules = [rule_to_dict(rule) for rule in DEFAULT_RULES]
    changed = [
        dict(r, authority="MANUAL") if r["warp_field"] == "company_name" else r for r in rules
    ]
    async with running(app_for(db)) as client:
        response = await client.put("/v1/sync/config", headers=TOKEN, json={"rules": changed})
        after = await client.get("/v1/sync/config", headers=TOKEN)
    assert response.status_code == 200, response.text
    assert response.json()["previous"] == rules
    by_field = {r["warp_field"]: r for r in after.json()["rules"]}
    assert by_field["company_name"]["authority"] == "MANUAL"
    [change] = await rows(db, SyncConfigChange)
    assert change.changed_by == "api-token-1"
    assert change.before == rules
    assert change.after == changed


@pytest.mark.parametrize(
    ("mutate", "field", "phrase"),
    [
        (
            lambda r: r.update(direction="SIDEWAYS") if r["warp_field"] == "status" else None,
            "status",
            "direction",
        ),
        (
            lambda r: r.update(authority="HUBSPOT") if r["warp_field"] == "status" else None,
            "status",
            "authority",
        ),
        (
            lambda r: (
                r.update(direction="BIDIRECTIONAL") if r["warp_field"] == "contact.email" else None
            ),
            "contact.email",
            "email_domain",
        ),
    ],
)
async def test_an_invalid_rule_is_refused_naming_the_field(
    db: Database,
    mutate,
    field: str,
    phrase: str,  # type: ignore[no-untyped-def]
) -> None:
    rules = [rule_to_dict(rule) for rule in DEFAULT_RULES]
    for rule in rules:
        mutate(rule)
    async with running(app_for(db)) as client:
        response = await client.put("/v1/sync/config", headers=TOKEN, json={"rules": rules})
        unchanged = await client.get("/v1/sync/config", headers=TOKEN)
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == field
    assert phrase in body["detail"]
    assert unchanged.json()["rules"] == [rule_to_dict(rule) for rule in DEFAULT_RULES]


async def test_bad_bodies_are_4xx(db: Database) -> None:
    async with running(app_for(db)) as client:
        not_json = await client.put("/v1/sync/config", headers=TOKEN, content=b"{nope")
        empty = await client.put("/v1/sync/config", headers=TOKEN, json={"rules": []})
    assert not_json.status_code == 400
    assert empty.status_code == 422
