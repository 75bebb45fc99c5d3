"""Who a row is about: the BAN and name of each customer a page lists, read from WARP in one
batch per page (never one query per row), so an operator reads "ACME-001 · Acme Corp"
instead of "customer"."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.context import AppContext
from app.store import sync_state


@dataclass(frozen=True)
class Who:
    customer_id: str | None
    ban: str | None
    name: str | None


async def who_of(
    context: AppContext,
    customer_ids: Iterable[str | None] = (),
    company_ids: Iterable[str | None] = (),
) -> dict[str, Who]:
    """Keyed by customer id and by HubSpot company id (a company reaches its customer through
    its link); one query for the links and one WARP read for all the customers."""
    customers = {key for key in customer_ids if key}
    companies = sorted({key for key in company_ids if key})
    by_company: dict[str, str] = {}
    if companies:
        async with context.engine.connect() as connection:
            links = await sync_state.links_by_company(connection, companies)
        by_company = {
            company: link.warp_customer_id
            for company, link in links.items()
            if link.warp_customer_id
        }
        customers |= set(by_company.values())
    records = await context.warp.fetch_customers(sorted(customers)) if customers else {}
    found: dict[str, Who] = {}
    for key in customers:
        record = records.get(key) or {}
        found[key] = Who(key, record.get("ban"), record.get("company_name"))
    for company, key in by_company.items():
        found[company] = found[key]
    return found
