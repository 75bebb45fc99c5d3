"""The console's forms through HTTP as a browser sends them: the rules form answers with the
API's own messages, "sync now" queues the customer first in line, lists page by key."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import func, insert, select

from app.main import create_app
from app.store.admin_audit import recent_actions
from app.store.models import SyncJob
from tests.conftest import Database
from tests.integration.admin_support import API_TOKEN, admin_settings, csrf_of, sign_in
from tests.integration.test_job_api import add_customers
from tests.support import running


def _row_index(page: str, field: str) -> str:
    match = re.search(rf'name="rules-(\d+)-warp_field" value="{re.escape(field)}"', page)
    assert match, field
    return match.group(1)


def _form_of(page: str) -> dict[str, str]:
    """The rules form's fields as the browser would post them (checked boxes only)."""
    data: dict[str, str] = {}
    for name, value in re.findall(r'<input name="(rules-\d+-[a-z_0-9-]+)" value="([^"]*)"', page):
        data[name] = value.replace("&#34;", '"').replace("&quot;", '"')
    for select_name, body in re.findall(
        r'<select name="(rules-\d+-[a-z_]+)"[^>]*>(.*?)</select>', page, re.S
    ):
        chosen = re.search(r'<option value="([^"]+)" selected>', body)
        data[select_name] = chosen.group(1) if chosen else ""
    for name in re.findall(r'<input type="checkbox" name="(rules-\d+-enabled)" checked', page):
        data[name] = "on"
    return data


async def test_the_rules_form_refuses_with_the_apis_message(db: Database) -> None:
    async with running(create_app(admin_settings(db))) as client:
        await sign_in(client)
        page = (await client.get("/admin/rules")).text
        form = _form_of(page)
        index = _row_index(page, "status")
        form[f"rules-{index}-authority"] = "HUBSPOT"  # a WARP -> HubSpot field won by HubSpot
        answer = await client.post("/admin/rules", data={**form, "csrftoken": csrf_of(page)})
        assert answer.status_code == 422
        rules = (
            await client.get("/v1/sync/config", headers={"Authorization": f"Bearer {API_TOKEN}"})
        ).json()["rules"]
        for rule in rules:
            if rule["warp_field"] == "status":
                rule["authority"] = "HUBSPOT"
        api = await client.put(
            "/v1/sync/config",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            json={"rules": rules},
        )
        assert api.status_code == 422
        assert api.json()["detail"] in answer.text
        assert 'data-field="status"' in answer.text

        form[f"rules-{index}-authority"] = "WARP"
        form[f"rules-{_row_index(page, 'credit_limit')}-authority"] = "MANUAL"
        saved = await client.post("/admin/rules", data={**form, "csrftoken": csrf_of(page)})
        assert saved.status_code == 303
        trail = (await client.get("/admin/rules")).text
        assert "credit_limit: authority HUBSPOT → MANUAL" in trail
        assert "admin:tester" in trail


async def test_sync_now_queues_the_customer_first_in_line(db: Database) -> None:
    [customer_id] = await add_customers(db, 1)
    settings = admin_settings(db, HUBSYNC_DEMO_DATA="false")
    async with running(create_app(settings)) as client:
        await sign_in(client)
        page = await client.get(f"/admin/customers/{customer_id}")
        assert page.status_code == 200
        assert "Never synced." in page.text
        answer = await client.post(
            f"/admin/customers/{customer_id}/sync", data={"csrftoken": csrf_of(page)}
        )
        assert answer.status_code == 303
        assert "notice=synced" in answer.headers["location"]
        missing = await client.get("/admin/customers/not-a-uuid")
        assert missing.status_code == 404
    async with db.engine.connect() as connection:
        [job] = list(
            await connection.execute(select(SyncJob).where(SyncJob.entity_key == customer_id))
        )
        [entry, *_] = await recent_actions(connection, action_prefix="customer.")
    assert (job.state, job.priority, job.source, job.direction) == (
        "pending",
        1,
        "operator",
        "both",
    )
    assert (entry.actor, entry.action) == ("admin:tester", "customer.sync")


async def test_lists_page_by_key(db: Database) -> None:
    ids = await add_customers(db, 60)
    async with running(create_app(admin_settings(db, HUBSYNC_DEMO_DATA="false"))) as client:
        await sign_in(client)
        first = (await client.get("/admin/customers")).text
        after = re.search(r"after=([0-9a-f-]{36})", first)
        assert after
        second = (await client.get(f"/admin/customers?after={after.group(1)}")).text
    shown = lambda page: set(re.findall(r'href="/admin/customers/([0-9a-f-]{36})"', page))  # noqa: E731
    assert len(shown(first)) == 50
    assert len(shown(second)) == 10
    assert shown(first) | shown(second) == set(ids)


async def test_retry_all_that_match_requeues_past_one_chunk(db: Database) -> None:
    """ "All that match" on the Failed page re-runs every matching job (1,200 here, more than
    the 500 of one requeue transaction) and says how many."""
    many = 1200
    async with db.engine.begin() as connection:
        await connection.execute(
            insert(SyncJob),
            [
                {
                    "entity_type": "customer",
                    "entity_key": str(uuid.uuid4()),
                    "state": "failed",
                    "attempts": 3,
                    "last_error": "HubSpot said no",
                    "last_error_kind": "validation" if n < many else "transport",
                }
                for n in range(many + 5)
            ],
        )
    async with running(create_app(admin_settings(db))) as client:
        await sign_in(client)
        page = await client.get("/admin/failed?kind=validation")
        answer = await client.post(
            "/admin/failed/retry",
            data={"csrftoken": csrf_of(page), "all": "1", "kind": "validation"},
        )
    assert answer.status_code == 303
    assert f"n={many}" in answer.headers["location"]
    async with db.engine.connect() as connection:
        counted = dict(
            (
                await connection.execute(
                    select(SyncJob.state, func.count()).group_by(SyncJob.state)
                )
            ).all()
        )
    assert counted == {"pending": many, "failed": 5}


async def test_the_rules_form_checks_the_warp_columns_like_the_api(db: Database) -> None:
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with running(create_app(admin_settings(db))) as client:
        await sign_in(client)
        page = (await client.get("/admin/rules")).text
        form = _form_of(page)
        form[f"rules-{_row_index(page, 'status')}-warp_field"] = "no_such_column"
        answer = await client.post("/admin/rules", data={**form, "csrftoken": csrf_of(page)})
        rules = (await client.get("/v1/sync/config", headers=auth)).json()["rules"]
        resent = await client.put("/v1/sync/config", headers=auth, json={"rules": rules})
        for rule in rules:
            if rule["warp_field"] == "status":
                rule["warp_field"] = "no_such_column"
        api = await client.put("/v1/sync/config", headers=auth, json={"rules": rules})
    assert answer.status_code == 422, answer.text
    assert api.status_code == 422
    assert (
        api.json()["detail"]
        == "no_such_column: the WARP customers table has no column 'no_such_column'"
    )
    assert api.json()["detail"] in answer.text.replace("&#39;", "'")
    assert 'data-field="no_such_column"' in answer.text
    # Nothing was saved: the current rules, sent back as they are, are still accepted.
    assert "no_such_column" not in str(resent.json())
    assert resent.status_code == 200, resent.text
