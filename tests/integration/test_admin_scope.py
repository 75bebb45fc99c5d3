"""The console's Scope page and the Rules page's Preview button, through HTTP as a browser
posts them: a preview saves nothing, a save is what the API stores, a bad column is the
API's own message."""

from __future__ import annotations

import re

from app.main import create_app
from tests.conftest import Database
from tests.integration.admin_support import API_TOKEN, admin_settings, csrf_of, sign_in
from tests.integration.test_admin_pages import _form_of, _row_index
from tests.integration.test_job_api import add_customers
from tests.support import running

API = {"Authorization": f"Bearer {API_TOKEN}"}


async def test_the_scope_form_previews_saves_and_refuses(db: Database) -> None:
    await add_customers(db, 3)
    async with running(create_app(admin_settings(db, HUBSYNC_DEMO_DATA="false"))) as client:
        await sign_in(client)
        page = (await client.get("/admin/scope")).text
        assert 'href="/admin/scope"' in page
        form = {
            "csrftoken": csrf_of(page),
            "scope-0-column": "customer_type",
            "scope-0-op": "in",
            "scope-0-values": "RESELLER, PREPAID",
        }
        preview = await client.post("/admin/scope", data={**form, "preview": "1"})
        assert preview.status_code == 200
        found = re.search(
            r"<strong>(\d+)</strong> would enter.*?<strong>(\d+)</strong> would leave",
            preview.text,
            re.S,
        )
        assert found, preview.text
        api_preview = await client.put(
            "/v1/sync/scope?dry_run=true",
            headers=API,
            json={
                "conditions": [
                    {"column": "customer_type", "op": "in", "values": ["RESELLER", "PREPAID"]}
                ]
            },
        )
        assert (int(found.group(1)), int(found.group(2))) == (
            api_preview.json()["entering"],
            api_preview.json()["leaving"],
        )
        assert (await client.get("/v1/sync/scope", headers=API)).json()["conditions"] == []

        saved = await client.post("/admin/scope", data=form)
        assert saved.status_code == 303
        stored = (await client.get("/v1/sync/scope", headers=API)).json()
        assert stored["conditions"] == [
            {"column": "customer_type", "op": "in", "values": ["RESELLER", "PREPAID"]}
        ]
        assert stored["updated_by"] == "admin:tester"

        bad = await client.post("/admin/scope", data={**form, "scope-0-column": "colour"})
        assert bad.status_code == 422
        assert "the WARP customers table has no column &#39;colour&#39;" in bad.text


async def test_the_rules_preview_button_forecasts_and_saves_nothing(db: Database) -> None:
    async with running(create_app(admin_settings(db, HUBSYNC_DEMO_DATA="false"))) as client:
        await sign_in(client)
        page = (await client.get("/admin/rules")).text
        form = _form_of(page)
        form[f"rules-{_row_index(page, 'credit_limit')}-authority"] = "MANUAL"
        answer = await client.post(
            "/admin/rules", data={**form, "csrftoken": csrf_of(page), "preview": "1"}
        )
        assert answer.status_code == 200
        assert 'id="rules-preview"' in answer.text
        assert "<h3>credit_limit (changed)</h3>" in answer.text
        rules = (await client.get("/v1/sync/config", headers=API)).json()["rules"]
        assert {r["warp_field"]: r["authority"] for r in rules}["credit_limit"] == "HUBSPOT"
