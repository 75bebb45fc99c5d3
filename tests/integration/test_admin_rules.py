"""Rules in words: directions and authorities read as words, and a value map is edited as
rows of inputs (WARP value → HubSpot value) that reach the same validation and store as
`PUT /v1/sync/config`."""

from __future__ import annotations

import re

from app.main import create_app
from tests.conftest import Database
from tests.integration.admin_support import API_TOKEN, admin_settings, csrf_of, sign_in
from tests.integration.test_admin_pages import _form_of, _row_index
from tests.support import running

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def _rule(client: object, field: str) -> dict[str, object]:
    rules = (await client.get("/v1/sync/config", headers=AUTH)).json()["rules"]  # type: ignore[attr-defined]
    [rule] = [r for r in rules if r["warp_field"] == field]
    return rule  # type: ignore[no-any-return]


async def test_rules_read_in_words_and_the_value_map_is_edited_as_rows(db: Database) -> None:
    async with running(create_app(admin_settings(db))) as client:
        await sign_in(client)
        page = (await client.get("/admin/rules")).text
        assert "WARP_TO_HUBSPOT</option>" not in page  # no enum names shown
        assert ">WARP → HubSpot</option>" in page
        assert "WARP → HubSpot, WARP wins" in page
        assert "value_map" not in page  # no raw JSON box
        before = await _rule(client, "customer_type")
        assert before["value_map"]
        index = _row_index(page, "customer_type")
        # Each mapping is a row of two inputs; there are spare rows to add one.
        pairs = re.findall(rf'name="rules-{index}-map-(\d+)-from" value="([^"]*)"', page)
        assert [value for _, value in pairs if value] == list(before["value_map"])  # type: ignore[call-overload]
        spare = next(number for number, value in pairs if not value)

        form = _form_of(page)
        form[f"rules-{index}-map-{spare}-from"] = "WHOLESALE"
        form[f"rules-{index}-map-{spare}-to"] = "wholesale"
        form[f"rules-{index}-map-0-to"] = ""
        form[f"rules-{index}-map-0-from"] = ""  # a cleared row drops that mapping
        saved = await client.post("/admin/rules", data={**form, "csrftoken": csrf_of(page)})
        assert saved.status_code == 303, saved.text
        after = await _rule(client, "customer_type")
        expected = dict(before["value_map"])  # type: ignore[call-overload]
        del expected[next(iter(before["value_map"]))]  # type: ignore[call-overload]
        expected["WHOLESALE"] = "wholesale"
        assert after["value_map"] == expected

        page = (await client.get("/admin/rules")).text
        form = _form_of(page)
        [row] = re.findall(rf'name="rules-{index}-map-(\d+)-from" value="WHOLESALE"', page)
        form[f"rules-{index}-map-{row}-to"] = ""  # WHOLESALE → (nothing)
        refused = await client.post("/admin/rules", data={**form, "csrftoken": csrf_of(page)})
        assert refused.status_code == 422
        assert "needs both a WARP and a HubSpot value" in refused.text
        assert 'data-field="customer_type"' in refused.text
        assert (await _rule(client, "customer_type"))["value_map"] == expected
