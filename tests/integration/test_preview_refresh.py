"""`?dry_run=true&refresh=true`: the preview reads HubSpot's current values of the linked
companies first (through the reconciliation's share-capped reader), so a company edited in
HubSpot after the last sync — field memory stale — is forecast as the next sync will really
decide it. It writes nothing, anywhere; it reads at most `refresh_limit` companies and says
what part of the answer is from memory."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.api.config import refresh_for
from app.hubspot.ratelimit_share import ShareCappedLimiter
from app.main import create_app
from app.sandbox.store import ALL
from app.store.models import (
    Conflict,
    EntityLink,
    FieldState,
    ScopeExit,
    SyncConfigChange,
    SyncConfigRule,
    SyncLog,
    SyncScope,
    table_of,
)
from app.sync.core.jobs import JobDirection, JobOutcome, OutcomeStatus
from app.sync.reconcile.reading import ShareReader
from app.warp.schema import customers_table
from tests.conftest import Database
from tests.integration.admin_support import API_TOKEN, admin_settings, csrf_of, sign_in
from tests.integration.test_admin_pages import _form_of, _row_index
from tests.support import api_only_settings, eventually, running_service
from tests.syncenv import job

TOKEN = {"Authorization": "Bearer ops-token"}
ADMIN_API = {"Authorization": f"Bearer {API_TOKEN}"}
CUSTOMERS = 8  # two of each: HubSpot edited, both edited, WARP edited, untouched


@pytest.fixture
async def service(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    async with running_service(create_app(api_only_settings(db.env, "ops-token"))) as running:
        yield running


async def add_customers(db: Database, count: int, **values: Any) -> list[str]:
    rows = [
        {
            "id": f"00000000-0000-4000-8000-{n:012d}",
            "ban": f"ZT-{n:09d}",
            "company_name": f"Co {n}",
            "status": "ACTIVE",
            "updated_at": datetime.now(UTC),
            **values,
        }
        for n in range(1, count + 1)
    ]
    async with db.engine.begin() as connection:
        await connection.execute(customers_table(db.customers_table).insert(), rows)
    return [row["id"] for row in rows]


async def edit_warp(db: Database, customer_id: str, **values: Any) -> None:
    table = customers_table(db.customers_table)
    async with db.engine.begin() as connection:
        await connection.execute(
            table.update()
            .where(table.c.id == customer_id)
            .values(**values, updated_at=datetime.now(UTC))
        )


async def sync_both(context: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The next sync of these customers, both ways (as a webhook's or a schedule's job)."""
    jobs = [job(i, direction=JobDirection.BOTH) for i in ids]
    outcomes: list[JobOutcome] = await context.job_handler(jobs)
    by_job = {o.job_id: o for o in outcomes}
    results = {}
    for claimed in jobs:
        outcome = by_job[claimed.id]
        assert outcome.status is OutcomeStatus.DONE, outcome.error
        assert outcome.result is not None
        results[claimed.entity_key] = outcome.result
    return results


async def stale_portal(db: Database, context: Any) -> tuple[list[str], dict[str, str]]:
    """Customers synced once, then edited after that sync: in HubSpot only (1, 2), on both
    sides (3, 4), in WARP only (5, 6), not at all (7, 8). Field memory knows none of it."""
    ids = await add_customers(db, CUSTOMERS)
    companies = {cid: r["hubspot_company_id"] for cid, r in (await sync_both(context, ids)).items()}
    for number, cid in enumerate(ids[:4], start=1):
        context.sandbox.edit_as_user(companies[cid], {"name": f"Sales {number}"})
    for number, cid in enumerate(ids[2:6], start=3):
        await edit_warp(db, cid, company_name=f"Billing {number}")
    await settled_webhooks(context)
    return ids, companies


async def settled_webhooks(context: Any) -> None:
    async def delivered() -> bool:
        stats = context.sandbox.stats()
        return stats["webhooks_pending"] == 0 and stats["webhooks_retrying"] == 0

    await eventually(delivered)


async def rules_with(client: httpx.AsyncClient, **authorities: str) -> list[dict[str, Any]]:
    rules = (await client.get("/v1/sync/config", headers=TOKEN)).json()["rules"]
    for rule in rules:
        rule["authority"] = authorities.get(rule["warp_field"], rule["authority"])
    return rules  # type: ignore[no-any-return]


def name_counts(forecast: dict[str, Any]) -> dict[str, int]:
    [field] = [f for f in forecast["fields"] if f["field"] == "company_name"]
    return {key: field[key] for key in ("write_hubspot", "write_warp", "conflicts")}


async def test_a_refreshed_preview_sees_crm_edits_memory_missed_and_equals_the_next_sync(
    service: tuple[httpx.AsyncClient, Any], db: Database
) -> None:
    client, context = service
    ids, _ = await stale_portal(db, context)
    flipped = await rules_with(client, company_name="HUBSPOT")
    url = "/v1/sync/config?dry_run=true"

    from_memory = await client.put(url, headers=TOKEN, json={"rules": flipped})
    refreshed = await client.put(url + "&refresh=true", headers=TOKEN, json={"rules": flipped})

    assert from_memory.status_code == refreshed.status_code == 200, refreshed.text
    memory, fresh = from_memory.json(), refreshed.json()
    assert memory["refreshed"] is False
    assert memory["refresh"] is None
    assert memory["decided_on_memory"] == CUSTOMERS
    # Memory saw neither CRM edit: WARP's renames look uncontested and go to HubSpot.
    assert name_counts(memory) == {"write_hubspot": 4, "write_warp": 0, "conflicts": 0}
    # Read now: the CRM edits go to WARP, and on the contested pair HubSpot's authority wins.
    assert name_counts(fresh) == {"write_hubspot": 2, "write_warp": 4, "conflicts": 0}
    assert fresh["refreshed"] is True
    assert fresh["decided_on_fresh_reads"] == CUSTOMERS
    assert fresh["decided_on_memory"] == 0
    refresh = fresh["refresh"]
    assert refresh["companies_wanted"] == refresh["companies_read"] == CUSTOMERS
    assert refresh["companies_not_found"] == 0
    assert refresh["hubspot_calls"] == 1
    assert refresh["cut_short"] is False
    assert refresh["customers_from_memory"] == 0
    assert refresh["rate_share"] == context.settings.reconcile_rate_share
    assert refresh["took_ms"] >= 0
    assert refresh["read_at"] is not None

    saved = await client.put("/v1/sync/config", headers=TOKEN, json={"rules": flipped})
    assert saved.status_code == 200, saved.text
    synced = await sync_both(context, ids)
    written = {
        "write_hubspot": sum("name" in r["hubspot_written"] for r in synced.values()),
        "write_warp": sum("company_name" in r["warp_written"] for r in synced.values()),
        "conflicts": sum(len(r["conflicts"]) for r in synced.values()),
    }
    assert written == name_counts(fresh)
    examples = {e["customer_id"]: e["decision"] for e in fresh["fields"][0]["examples"]}
    for cid, result in synced.items():
        if "company_name" in result["warp_written"]:
            assert examples[cid] == "WRITE_WARP"
        elif "name" in result["hubspot_written"]:
            assert examples[cid] == "WRITE_HUBSPOT"


async def test_a_refresh_reads_at_most_its_limit_and_says_the_rest_is_from_memory(
    service: tuple[httpx.AsyncClient, Any], db: Database
) -> None:
    client, context = service
    await stale_portal(db, context)
    flipped = await rules_with(client, company_name="HUBSPOT")
    requests_before = context.sandbox.stats()["requests"]

    response = await client.put(
        "/v1/sync/config?dry_run=true&refresh=true&refresh_limit=3",
        headers=TOKEN,
        json={"rules": flipped},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    refresh = body["refresh"]
    assert refresh["limit"] == 3
    assert refresh["cut_short"] is True
    assert refresh["companies_wanted"] == CUSTOMERS
    assert refresh["companies_read"] == 3
    assert refresh["customers_from_memory"] == CUSTOMERS - 3 == body["decided_on_memory"]
    assert body["decided_on_fresh_reads"] == 3
    assert body["memory"]["oldest"] is not None  # the memory part says how old it is
    assert refresh["hubspot_calls"] == 1
    assert context.sandbox.stats()["requests"] - requests_before == 1


def _hubspot_companies(context: Any) -> dict[str, Any]:
    return {c.id: c.to_json(ALL) for c in context.sandbox.companies.active()}


async def _everything(db: Database, context: Any) -> dict[str, Any]:
    """Every table a sync or an operator's change writes, WARP's customers and HubSpot."""
    tables = [FieldState, EntityLink, Conflict, SyncConfigRule, SyncConfigChange, SyncScope]
    tables += [ScopeExit, SyncLog]
    seen: dict[str, Any] = {}
    async with db.engine.connect() as connection:
        for model in tables:
            table = table_of(model)
            rows = await connection.execute(select(table))
            seen[table.name] = sorted(repr(tuple(row)) for row in rows)
        rows = await connection.execute(select(customers_table(db.customers_table)))
        seen["warp"] = sorted(repr(tuple(row)) for row in rows)
    seen["hubspot"] = _hubspot_companies(context)
    return seen


async def test_a_refreshed_preview_writes_nothing_anywhere(
    service: tuple[httpx.AsyncClient, Any], db: Database
) -> None:
    client, context = service
    ids, _ = await stale_portal(db, context)
    await client.put(  # a CLOSED customer with a company, out of scope: it would return
        "/v1/sync/scope",
        headers=TOKEN,
        json={"conditions": [{"column": "status", "op": "not_in", "values": ["CLOSED"]}]},
    )
    await edit_warp(db, ids[0], status="CLOSED")
    await sync_both(context, [ids[0]])
    flipped = await rules_with(client, company_name="HUBSPOT", credit_limit="HUBSPOT")
    before = await _everything(db, context)
    writes_before = context.sandbox.stats()["writes"]

    rules = await client.put(
        "/v1/sync/config?dry_run=true&refresh=true", headers=TOKEN, json={"rules": flipped}
    )
    scope = await client.put(
        "/v1/sync/scope?dry_run=true&refresh=true", headers=TOKEN, json={"conditions": []}
    )

    assert rules.status_code == scope.status_code == 200, (rules.text, scope.text)
    assert rules.json()["refresh"]["companies_read"] > 0
    assert scope.json()["refresh"]["entering_with_company"]["customers"] == 1
    assert context.sandbox.stats()["writes"] == writes_before
    assert await _everything(db, context) == before


async def test_a_refreshed_scope_preview_forecasts_the_returning_customers_first_sync(
    service: tuple[httpx.AsyncClient, Any], db: Database
) -> None:
    client, context = service
    ids, companies = await stale_portal(db, context)
    closing = [ids[0], ids[6]]  # one edited in HubSpot after its last sync, one not
    for cid in closing:
        await edit_warp(db, cid, status="CLOSED")
    scope = {"conditions": [{"column": "status", "op": "not_in", "values": ["CLOSED"]}]}
    assert (await client.put("/v1/sync/scope", headers=TOKEN, json=scope)).status_code == 200
    await sync_both(context, closing)  # skipped: out of scope from now on
    context.sandbox.edit_as_user(companies[ids[6]], {"name": "Renamed while away"})
    await settled_webhooks(context)

    plain = await client.put("/v1/sync/scope?dry_run=true", headers=TOKEN, json={"conditions": []})
    response = await client.put(
        "/v1/sync/scope?dry_run=true&refresh=true", headers=TOKEN, json={"conditions": []}
    )

    assert plain.status_code == response.status_code == 200, response.text
    assert plain.json()["refreshed"] is False
    assert "refresh" not in plain.json()
    body = response.json()
    assert body["refreshed"] is True
    assert body["entering"] == 2
    refresh = body["refresh"]
    assert refresh["companies_read"] == 2
    returning = refresh["entering_with_company"]
    assert returning["customers"] == returning["decided"] == 2
    saved = await client.put("/v1/sync/scope", headers=TOKEN, json={"conditions": []})
    assert saved.status_code == 200, saved.text
    synced = await sync_both(context, closing)
    assert returning["write_warp"] == sum(bool(r["warp_written"]) for r in synced.values()) == 2
    assert returning["write_hubspot"] == sum(bool(r["hubspot_written"]) for r in synced.values())
    assert returning["conflicts"] == sum(bool(r["conflicts"]) for r in synced.values())


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?dry_run=true&refresh=maybe", "refresh"),
        ("?refresh=true", "refresh"),
        ("?dry_run=false&refresh=true", "refresh"),
        ("?dry_run=true&refresh=true&refresh_limit=0", "refresh_limit"),
        ("?dry_run=true&refresh=true&refresh_limit=10001", "refresh_limit"),
        ("?dry_run=true&refresh=true&refresh_limit=ten", "refresh_limit"),
        ("?dry_run=true&refresh_limit=50", "refresh_limit"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/sync/config", "/v1/sync/scope"])
async def test_bad_refresh_input_is_a_422_naming_it_and_saves_nothing(
    service: tuple[httpx.AsyncClient, Any], path: str, query: str, field: str
) -> None:
    client, _ = service
    before = (await client.get(path, headers=TOKEN)).json()
    if path.endswith("config"):
        body: dict[str, Any] = {"rules": await rules_with(client, company_name="HUBSPOT")}
    else:
        body = {"conditions": [{"column": "status", "op": "in", "values": ["ACTIVE"]}]}

    response = await client.put(path + query, headers=TOKEN, json=body)

    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert field in response.json()["detail"]
    assert (await client.get(path, headers=TOKEN)).json() == before


async def test_the_consoles_preview_box_reads_hubspot_first_and_says_so(db: Database) -> None:
    settings = admin_settings(db, HUBSYNC_DEMO_DATA="false")
    async with running_service(create_app(settings)) as (client, context):
        await stale_portal(db, context)
        await sign_in(client)
        page = (await client.get("/admin/rules")).text
        assert 'id="preview-rules-refresh"' in page
        form = {**_form_of(page), "csrftoken": csrf_of(page), "preview": "1"}
        form[f"rules-{_row_index(page, 'company_name')}-authority"] = "HUBSPOT"

        plain = await client.post("/admin/rules", data=form)
        fresh = await client.post("/admin/rules", data={**form, "refresh": "1"})

        assert plain.status_code == fresh.status_code == 200
        assert "from field memory (no HubSpot call)" in plain.text
        assert 'id="rules-preview-refresh"' not in plain.text
        assert 'id="rules-preview-refresh"' in fresh.text
        assert f"Refreshed: {CUSTOMERS} companies read from HubSpot" in fresh.text
        assert re.search(r'class="write-warp">4<', fresh.text), fresh.text
        assert re.search(r'class="write-warp">0<', plain.text), plain.text
        rules = (await client.get("/v1/sync/config", headers=ADMIN_API)).json()["rules"]
        assert {r["warp_field"]: r["authority"] for r in rules}["company_name"] == "LATEST_WINS"


async def test_a_refresh_reads_through_the_reconciliations_share_capped_client(
    service: tuple[httpx.AsyncClient, Any],
) -> None:
    _, context = service
    refresh = refresh_for(context, 5)
    assert isinstance(refresh.reader, ShareReader)
    assert refresh.reader.hubspot is context.reconciler.hubspot
    limiter = context.reconciler.hubspot.limiter
    assert isinstance(limiter, ShareCappedLimiter)
    share = context.settings.reconcile_rate_share
    assert limiter.ceiling == int(context.settings.hubspot_rate_limit.requests * share)
    assert refresh.rate_share == share
