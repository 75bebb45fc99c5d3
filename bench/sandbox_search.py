"""The sandbox's CRM search at size: a keyset page by record id over N active companies.

What a reconciliation paging through every company sends (an `hs_object_id` LT filter,
DESCENDING, limit 200), run in-process against a CompanyStore of N companies, with and
without the 2 s index lag (every company was created long before, so the lag hides none).
Reports the median and p95 CPU time of one search (`time.process_time`), after one warm-up
search that builds the store's index.

Usage: python -m bench.sandbox_search [--companies 100000] [--searches 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

from app.sandbox.properties import PropertyRegistry
from app.sandbox.search import run_search
from app.sandbox.store import CompanyStore, WriteSource


def build_store(count: int) -> CompanyStore:
    registry = PropertyRegistry()
    registry.create({"name": "warp_ban", "label": "BAN", "type": "string",
                     "fieldType": "text", "groupName": "companyinformation"})  # fmt: skip
    store = CompanyStore(registry, emit=lambda event: None, clock=lambda: 0)
    source = WriteSource("INTEGRATION", "1")
    for n in range(count):
        store.create({"name": f"Company {n}", "warp_ban": f"ZT-{n}"}, source)
    return store


def keyset_body(below: int) -> dict[str, object]:
    return {
        "filterGroups": [
            {"filters": [{"propertyName": "hs_object_id", "operator": "LT", "value": str(below)}]}
        ],
        "sorts": [{"propertyName": "hs_object_id", "direction": "DESCENDING"}],
        "properties": ["name", "warp_ban"],
        "limit": 200,
    }


def measure(store: CompanyStore, searches: int, index_delay_ms: int) -> list[float]:
    top = max(int(c.id) for c in store.active()) + 1
    run_search(store, keyset_body(top), index_delay_ms=index_delay_ms)  # warm-up
    costs = []
    for n in range(searches):
        start = time.process_time()
        run_search(store, keyset_body(top - 200 * n), index_delay_ms=index_delay_ms)
        costs.append((time.process_time() - start) * 1000)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--companies", type=int, default=100_000)
    parser.add_argument("--searches", type=int, default=50)
    args = parser.parse_args()
    store = build_store(args.companies)
    for delay in (0, 2000):
        costs = sorted(measure(store, args.searches, delay))
        p95 = costs[int(len(costs) * 0.95) - 1]
        print(
            f"{args.companies} companies, index delay {delay} ms: "
            f"median {statistics.median(costs):.2f} ms, p95 {p95:.2f} ms CPU per search"
        )


if __name__ == "__main__":
    main()
