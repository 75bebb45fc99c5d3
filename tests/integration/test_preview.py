"""Preview before saving: `PUT /v1/sync/config?dry_run=true` and `PUT /v1/sync/scope?dry_run=true`
forecast from field memory what the next sync will do, save nothing, call no HubSpot — and
the forecast matches what the sync then really writes (preview, save, sync, compare)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace as change
from decimal import Decimal
from typing import Any

import pytest

from app.main import create_app
from app.settings import Settings
from app.store.sync_config import load_rules, replace_rules
from app.sync.core.jobs import JobDirection, OutcomeStatus
from app.sync.core.rules import Authority, rule_to_dict
from tests.conftest import Database
from tests.support import running
from tests.syncenv import SyncEnv, sync_env

TOKEN = {"Authorization": "Bearer ops-token"}
CUSTOMERS = 300
BATCH = 100


@pytest.fixture
async def env(db: Database) -> AsyncIterator[SyncEnv]:
    async with sync_env(db) as environment:
        yield environment


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


async def sync_all(env: SyncEnv, ids: list[str]) -> list[dict[str, Any]]:
    results = []
    for start in range(0, len(ids), BATCH):
        outcomes = await env.sync(*ids[start : start + BATCH], direction=JobDirection.BOTH)
        for outcome in outcomes:
            assert outcome.status is OutcomeStatus.DONE, outcome.error
            assert outcome.result is not None
            results.append(outcome.result)
    return results


async def set_authorities(env: SyncEnv, **authorities: Authority) -> list[dict[str, Any]]:
    async with env.db.engine.begin() as connection:
        rules = [
            change(r, authority=authorities[r.warp_field]) if r.warp_field in authorities else r
            for r in await load_rules(connection)
        ]
        await replace_rules(connection, rules, "test")
    return [rule_to_dict(rule) for rule in rules]


@pytest.mark.slow  # timing-sensitive: runs alone in make test-all, not beside other workers
async def test_a_rule_flip_forecast_equals_what_the_next_sync_writes(env: SyncEnv) -> None:
    await set_authorities(env, company_name=Authority.MANUAL, credit_limit=Authority.MANUAL)
    ids = [await env.add_customer() for _ in range(CUSTOMERS)]
    created = await sync_all(env, ids)
    companies = {r["customer_id"]: r["hubspot_company_id"] for r in created}
    # Both sides edited: every name, every other credit limit, a few with equal new names.
    for number, customer_id in enumerate(ids):
        same = number % 10 == 0
        await env.warp.write_fields(customer_id, {"company_name": f"Billing {number}"})
        edits = {"name": f"Billing {number}" if same else f"Sales {number}"}
        if number % 2 == 0:
            await env.warp.write_fields(customer_id, {"credit_limit": Decimal(2000 + number)})
            edits["warp_credit_limit"] = str(5000 + number)
        env.sandbox.edit_as_user(companies[customer_id], edits)
    held = await sync_all(env, ids)
    assert sum(len(r["conflicts"]) for r in held) > CUSTOMERS  # MANUAL: all held open

    flipped = await set_authorities(
        env, company_name=Authority.WARP, credit_limit=Authority.HUBSPOT
    )
    async with env.db.engine.begin() as connection:  # back to MANUAL: the flip is the PUT's
        await replace_rules(
            connection,
            [
                change(r, authority=Authority.MANUAL)
                if r.warp_field in ("company_name", "credit_limit")
                else r
                for r in await load_rules(connection)
            ],
            "test",
        )
    async with running(app_for(env.db)) as client:
        preview = await client.put(
            "/v1/sync/config?dry_run=true", headers=TOKEN, json={"rules": flipped}
        )
        assert preview.status_code == 200, preview.text
        after_preview = await client.get("/v1/sync/config", headers=TOKEN)
        authorities = {r["warp_field"]: r["authority"] for r in after_preview.json()["rules"]}
        assert authorities["company_name"] == "MANUAL"  # nothing saved
        saved = await client.put("/v1/sync/config", headers=TOKEN, json={"rules": flipped})
        assert saved.status_code == 200, saved.text
    forecast = preview.json()
    assert forecast["dry_run"] is True
    assert forecast["linked_customers"] == CUSTOMERS
    assert forecast["memory"]["oldest"] is not None
    by_field = {f["field"]: f for f in forecast["fields"]}
    assert set(by_field) == {"company_name", "credit_limit"}

    synced = await sync_all(env, ids)
    written_hubspot = sum("name" in r["hubspot_written"] for r in synced)
    written_warp = sum("credit_limit" in r["warp_written"] for r in synced)
    opened = sum(len(r["conflicts"]) for r in synced)
    assert by_field["company_name"]["write_hubspot"] == written_hubspot == CUSTOMERS * 9 // 10
    assert by_field["company_name"]["write_warp"] == 0
    assert by_field["credit_limit"]["write_warp"] == written_warp == CUSTOMERS // 2
    assert by_field["credit_limit"]["write_hubspot"] == 0
    assert sum(f["conflicts"] for f in by_field.values()) == opened == 0
    example = by_field["company_name"]["examples"][0]
    assert len(by_field["company_name"]["examples"]) == 20
    assert example["decision"] == "WRITE_HUBSPOT"
    assert example["warp_value"].startswith("Billing")
    assert example["hubspot_value"].startswith("Sales")
    assert "authority WARP: WARP wins" in example["reason"]


async def test_a_scope_preview_counts_who_enters_and_leaves_and_saves_nothing(
    env: SyncEnv,
) -> None:
    closed = [await env.add_customer(status="CLOSED") for _ in range(3)]
    active = [await env.add_customer() for _ in range(5)]
    await sync_all(env, [*closed[:2], *active])  # one closed customer has no company
    scope = {"conditions": [{"column": "status", "op": "not_in", "values": ["CLOSED"]}]}
    async with running(app_for(env.db)) as client:
        preview = await client.put("/v1/sync/scope?dry_run=true", headers=TOKEN, json=scope)
        assert preview.status_code == 200, preview.text
        assert (await client.get("/v1/sync/scope", headers=TOKEN)).json()["conditions"] == []
        saved = await client.put("/v1/sync/scope", headers=TOKEN, json=scope)
        assert saved.status_code == 200, saved.text
        shown = (await client.get("/v1/sync/scope", headers=TOKEN)).json()
        back = await client.put(
            "/v1/sync/scope?dry_run=true", headers=TOKEN, json={"conditions": []}
        )
    body = preview.json()
    assert body["customers"] == 8
    assert body["leaving"] == 3
    assert body["leaving_with_company"] == 2
    assert body["entering"] == 0
    assert sorted(body["examples"]["leaving"]) == sorted(closed)
    assert shown["conditions"] == scope["conditions"]
    assert shown["updated_by"] == "api-token-1"
    assert back.json()["entering"] == 3
    assert back.json()["entering_without_company"] == 1
    outcomes = await env.sync(*closed, direction=JobDirection.BOTH)
    assert sum(o.result["outcome"] == "out_of_scope" for o in outcomes) == body["leaving"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/v1/sync/scope",
            {"conditions": [{"column": "colour", "op": "in", "values": ["x"]}]},
            "conditions[0].column",
        ),
        (
            "/v1/sync/scope",
            {"conditions": [{"column": "status", "op": "is", "values": ["x"]}]},
            "conditions[0].op",
        ),
        (
            "/v1/sync/scope",
            {"conditions": [{"column": "status", "op": "in", "values": []}]},
            "conditions[0].values",
        ),
        ("/v1/sync/scope", {"conditions": "status"}, "conditions"),
        ("/v1/sync/scope", {"rules": []}, "conditions"),
        ("/v1/sync/scope?dry_run=maybe", {"conditions": []}, "dry_run"),
        ("/v1/sync/config?dry_run=1", {"rules": [{"warp_field": "ban"}]}, "dry_run"),
    ],
)
async def test_bad_input_is_a_422_naming_it(
    db: Database, path: str, body: dict[str, Any], field: str
) -> None:
    async with running(app_for(db)) as client:
        response = await client.put(path, headers=TOKEN, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
