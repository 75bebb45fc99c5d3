"""Every HubSpot API path hubsync calls, in one place.

HubSpot is moving the CRM from `/crm/v3/...` to date-versioned paths
(`/crm/objects/2026-03/companies/...`; `/v3/` is announced unsupported from September 2027).
Both versions take the same bodies for the calls hubsync makes, so moving over is a change of
`OBJECTS_ROOT` (and `PROPERTIES_ROOT` once a dated properties API exists) and nothing else.
"""

from __future__ import annotations

from urllib.parse import quote

OBJECTS_ROOT = "/crm/v3/objects"  # dated successor: "/crm/objects/2026-03"
PROPERTIES_ROOT = "/crm/v3/properties"

COMPANIES = f"{OBJECTS_ROOT}/companies"
COMPANIES_SEARCH = f"{COMPANIES}/search"
COMPANIES_BATCH_READ = f"{COMPANIES}/batch/read"
COMPANIES_BATCH_UPDATE = f"{COMPANIES}/batch/update"
COMPANIES_BATCH_UPSERT = f"{COMPANIES}/batch/upsert"

ACCOUNT_DETAILS = "/account-info/v3/details"

COMPANY_PROPERTIES = f"{PROPERTIES_ROOT}/companies"
COMPANY_PROPERTY_GROUPS = f"{COMPANY_PROPERTIES}/groups"


def company(company_id: str) -> str:
    return f"{COMPANIES}/{quote(company_id, safe='')}"


def company_property(name: str) -> str:
    return f"{COMPANY_PROPERTIES}/{quote(name, safe='')}"


def operation(method: str, path: str) -> str:
    """A request's operation, a small fixed set fit for a metric label (never an id)."""
    if path.startswith(PROPERTIES_ROOT):
        return "properties"
    if path.startswith(f"{COMPANIES}/batch/"):
        return "batch_" + path.rsplit("/", 1)[-1]
    if path == COMPANIES_SEARCH:
        return "search"
    if path == COMPANIES:
        return "list_companies"
    if path.startswith(f"{COMPANIES}/"):
        return "archive_company" if method == "DELETE" else "get_company"
    return "other"
