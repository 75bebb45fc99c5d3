"""What the reconciliation needs of the sandbox: the list API pages 100,000 companies in a
stable order, quickly; search filters and sorts on `hs_lastmodifieddate`; a write counter."""

from __future__ import annotations

import time

from app.sandbox.config import SandboxConfig
from app.sandbox.sandbox import Sandbox
from app.sandbox.store import CompanyStore
from app.sandbox.testing import running_sandbox
from app.settings import RateLimit

LIST = "/crm/v3/objects/companies"
SEARCH = f"{LIST}/search"


def test_the_list_pages_100_000_companies_in_id_order_quickly() -> None:
    sandbox = Sandbox()
    source = sandbox.user_source(1)
    for n in range(100_000):
        sandbox.companies.create({"name": f"Co {n}"}, source)
    archived = sandbox.companies.require("1500")
    sandbox.companies.archive(archived.id, source)
    started = time.perf_counter()
    seen: list[int] = []
    after: str | None = None
    while True:
        page, after = sandbox.companies.page(after, 100)
        seen += [int(c.id) for c in page]
        if after is None:
            break
    elapsed = time.perf_counter() - started
    assert len(seen) == 99_999
    assert seen == sorted(set(seen))
    assert 1500 not in seen
    assert elapsed < 10, f"1,000 pages took {elapsed:.1f} s"  # was minutes before the index


def test_paging_stays_stable_while_companies_are_added_and_merged() -> None:
    store: CompanyStore = Sandbox().companies
    source = Sandbox.user_source(1)
    ids = [store.create({"name": f"Co {n}"}, source).id for n in range(250)]
    first, after = store.page(None, 100)
    store.create({"name": "late"}, source)  # appended after every id already seen
    merged = store.merge(ids[150], ids[151], source)
    rest: list[str] = []
    while after is not None:
        page, after = store.page(after, 100)
        rest += [c.id for c in page]
    listed = [c.id for c in first] + rest
    assert listed[:100] == ids[:100]
    assert ids[150] not in listed
    assert ids[151] not in listed
    assert listed[-1] == merged.id
    assert len(listed) == len(set(listed)) == 250 - 2 + 1 + 1


async def test_search_filters_and_sorts_on_last_modified() -> None:
    config = SandboxConfig(rate_limit=RateLimit(10_000, 1.0), search_rate_limit=RateLimit(1000, 1))
    async with running_sandbox(config) as hub:
        clock = iter(range(1_000_000, 2_000_000, 1000))
        hub.sandbox.companies._clock = lambda: next(clock)  # one company per second
        source = hub.sandbox.user_source(1)
        ids = [hub.sandbox.companies.create({"name": f"Co {n}"}, source).id for n in range(6)]
        hub.sandbox.companies.update(ids[0], {"name": "edited"}, source)  # newest now
        window = {
            "filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "1002000"},
                {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": "1007000"},
            ]
        }
        answer = await hub.client.post(
            SEARCH,
            json={
                "filterGroups": [window],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}],
                "properties": ["hs_lastmodifieddate"],
                "limit": 200,
            },
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [r["id"] for r in body["results"]] == [ids[0], ids[5], ids[4], ids[3], ids[2]]
        assert body["total"] == 5
        too_many = await hub.client.post(SEARCH, json={"filterGroups": [window], "limit": 201})
        assert too_many.status_code == 400


async def test_stats_count_writes_not_reads() -> None:
    async with running_sandbox(SandboxConfig(rate_limit=RateLimit(1000, 1.0))) as hub:
        await hub.client.get(LIST, params={"limit": "10"})
        await hub.client.post(f"{LIST}/batch/read", json={"inputs": []})
        await hub.client.post(SEARCH, json={"filterGroups": []})
        assert hub.sandbox.stats()["writes"] == 0
        await hub.client.post(LIST, json={"properties": {"name": "New"}})
        assert hub.sandbox.stats()["writes"] == 1


async def test_companies_seeded_through_the_control_api_cost_no_quota() -> None:
    async with running_sandbox(SandboxConfig(rate_limit=RateLimit(1, 60.0))) as hub:
        seeded = await hub.client.post(
            "/_sandbox/companies",
            json={"companies": [{"properties": {"name": f"Co {n}"}} for n in range(300)]},
        )
        assert seeded.status_code == 201
        assert len(seeded.json()["ids"]) == 300
        assert len(hub.sandbox.companies) == 300
        assert hub.sandbox.stats()["requests"] == 0
        too_many = await hub.client.post("/_sandbox/companies", json={"companies": [{}] * 10_001})
        assert too_many.status_code == 400
