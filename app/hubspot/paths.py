"""Every HubSpot API path hubsync calls, in one place, for each API version it speaks.

HubSpot is moving the CRM from `/crm/v3/...` to date-versioned paths (`/crm/objects/2026-03/
companies/...`, `/crm/properties/2026-03/companies/...`); `/v3/` is announced unsupported from
September 2027. Both versions take the same bodies and answer the same shapes for the calls
hubsync makes, so the version is a choice of paths (HUBSPOT_API_VERSION) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

API_VERSIONS = ("2026-03", "v3")
DEFAULT_API_VERSION = "2026-03"

# Account details are not date-versioned with the CRM objects.
ACCOUNT_DETAILS = "/account-info/v3/details"


@dataclass(frozen=True)
class ApiPaths:
    version: str = DEFAULT_API_VERSION

    def __post_init__(self) -> None:
        if self.version not in API_VERSIONS:
            raise ValueError(f"unknown HubSpot API version {self.version!r}: {API_VERSIONS}")

    @property
    def objects_root(self) -> str:
        return "/crm/v3/objects" if self.version == "v3" else f"/crm/objects/{self.version}"

    @property
    def properties_root(self) -> str:
        return "/crm/v3/properties" if self.version == "v3" else f"/crm/properties/{self.version}"

    @property
    def companies(self) -> str:
        return f"{self.objects_root}/companies"

    @property
    def companies_search(self) -> str:
        return f"{self.companies}/search"

    def companies_batch(self, operation: str) -> str:
        """`read`, `update`, `upsert`, `create` or `archive`."""
        return f"{self.companies}/batch/{operation}"

    def company(self, company_id: str) -> str:
        return f"{self.companies}/{quote(company_id, safe='')}"

    @property
    def company_properties(self) -> str:
        return f"{self.properties_root}/companies"

    @property
    def company_property_groups(self) -> str:
        return f"{self.company_properties}/groups"

    def company_property(self, name: str) -> str:
        return f"{self.company_properties}/{quote(name, safe='')}"


_VERSIONS = [ApiPaths(version) for version in API_VERSIONS]


def operation(method: str, path: str) -> str:
    """A request's operation, a small fixed set fit for a metric label (never an id), the
    same whichever API version the path belongs to."""
    if path.startswith(tuple(v.properties_root for v in _VERSIONS)):
        return "properties"
    for version in _VERSIONS:
        companies = version.companies
        if path.startswith(f"{companies}/batch/"):
            return "batch_" + path.rsplit("/", 1)[-1]
        if path == version.companies_search:
            return "search"
        if path == companies:
            return "list_companies"
        if path.startswith(f"{companies}/"):
            return "archive_company" if method == "DELETE" else "get_company"
    return "other"
