"""Issue 12, case 8: the merge base was stored per WARP field, so a rule pointed at a new
HubSpot property compared the old property's base with the new, empty property — "changed in
HubSpot to blank" — and erased WARP's value. The base now belongs to the (WARP field, HubSpot
property) pair: a changed rule starts with no base, and a blank never wins over a value."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from app.store.models import SyncConfigRule
from app.store.sync_state import field_memory
from app.sync.core.jobs import JobDirection
from tests.conftest import Database
from tests.syncenv import sync_env

rules_t = SyncConfigRule.__table__


@pytest.mark.parametrize("direction", [JobDirection.BOTH, JobDirection.TO_HUBSPOT])
async def test_a_rule_pointed_at_a_new_property_never_wipes_warp(
    db: Database, direction: JobDirection
) -> None:
    async with sync_env(db) as env:
        customer = await env.add_customer(company_name="Acme Telecom")
        [first] = await env.sync(customer)
        company_id = first.result["hubspot_company_id"]  # type: ignore[index]
        await env.client.create_property(
            {
                "name": "legal_name",
                "label": "Legal name",
                "type": "string",
                "fieldType": "text",
                "groupName": "warp",
            }
        )
        async with db.engine.begin() as connection:  # an operator re-points the rule
            await connection.execute(
                update(rules_t)
                .where(rules_t.c.warp_field == "company_name")
                .values(hubspot_property="legal_name")
            )
        [second] = await env.sync(customer, direction=direction)
        assert second.status == "done", second.error
        assert (await env.customer(customer))["company_name"] == "Acme Telecom"
        assert env.company(company_id)["legal_name"] == "Acme Telecom"
        async with db.engine.connect() as connection:
            memory = (await field_memory(connection, [customer]))[customer]
        assert memory["company_name"].hubspot_property == "legal_name"
        assert memory["company_name"].base_value == "Acme Telecom"
