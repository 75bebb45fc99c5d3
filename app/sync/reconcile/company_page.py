"""One page of HubSpot companies, judged: which customer each company belongs to (its link
first, then its `warp_ban`) and what the pair is. Pure: the facts are read beforehand
(`full_run`), so the pairing rules can be read and tested on their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.hubspot.models import HubSpotCompany
from app.sync.core.identity import ban_problem, normalize_ban, shown
from app.sync.core.records import FieldMemory, Link
from app.sync.core.rules import IDENTITY_HUBSPOT_PROPERTY, FieldRule
from app.sync.core.scope import EVERYONE, Scope
from app.sync.reconcile import categories as judge
from app.sync.reconcile.categories import Category, Finding, FixAction

MERGED_IDS = "hs_merged_object_ids"


def company_ban(company: HubSpotCompany) -> str | None:
    """The company's `warp_ban` as compared (`normalize_ban`), usable or not."""
    return normalize_ban(company.properties.get(IDENTITY_HUBSPOT_PROPERTY))


def unusable(company: HubSpotCompany) -> str | None:
    """Why a value of this company cannot go into the report or be paired, or None: its
    ban (`ban_problem`), or any value no database text column holds."""
    ban = company_ban(company)
    if ban is not None and (problem := ban_problem(ban)) is not None:
        return f"its warp_ban {shown(ban)!r} cannot be used: {problem}"
    for name, value in company.properties.items():
        if not _holdable(value):
            return (
                f"its {name} holds a character no text column can store (NUL or a lone surrogate)"
            )
    return None


def _holdable(value: object) -> bool:
    """Whether a text column can hold the value (no NUL, no lone surrogate). Every company
    of a run goes through this: the common case, ASCII, is answered without encoding."""
    if not isinstance(value, str):
        return True
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def merged_ids(company: HubSpotCompany) -> list[str]:
    raw = company.properties.get(MERGED_IDS) or ""
    return [part.strip() for part in raw.split(";") if part.strip()]


@dataclass
class PageFacts:
    """What hubsync and WARP know about one page's companies."""

    links: Mapping[str, Link]  # by company id (the page's and the ids merged into them)
    merged_away: Mapping[str, list[str]]  # company id -> ids merged into it
    by_id: Mapping[str, dict[str, Any]]  # linked customers
    by_ban: Mapping[str, dict[str, Any]]  # customers of the unlinked companies' bans
    customer_links: Mapping[str, Link]  # the links of `by_ban`'s customers
    claimed_before: Mapping[str, str]  # customers earlier pages paired -> their company
    memory: Mapping[str, Mapping[str, FieldMemory]]
    conflicts: Mapping[str, set[str]]
    scope: Scope = EVERYONE
    claimed: dict[str, str] = field(default_factory=dict)  # this page's pairs

    def owner_of(self, customer_id: str) -> str | None:
        return self.claimed_before.get(customer_id) or self.claimed.get(customer_id)

    def judge(self, company: HubSpotCompany, rules: Sequence[FieldRule]) -> list[Finding]:
        ban = company_ban(company)
        link = self.links.get(company.id)
        if (problem := unusable(company)) is not None:
            return [self._unusable(company, link, problem)]
        findings, relinked = self._stale_links(company, ban)
        if relinked and link is None:
            return findings
        customer = self.by_id.get(link.warp_customer_id or "") if link else None
        if link is not None and customer is not None:
            return [*findings, self._linked(company, link, customer, ban, rules)]
        if ban is None:
            return [*findings, Finding(Category.UNMANAGED, company_id=company.id)]
        return [*findings, self._by_ban(company, link, ban, rules)]

    def _unusable(self, company: HubSpotCompany, link: Link | None, problem: str) -> Finding:
        """A company hubsync cannot pair or report in full: an `error` item for a person,
        and the run goes on. Its linked customer counts as met (it is not missing)."""
        customer = self.by_id.get(link.warp_customer_id or "") if link else None
        if customer is not None and self.owner_of(customer["id"]) is None:
            self.claimed[customer["id"]] = company.id
        return Finding(
            Category.ERROR,
            customer["id"] if customer is not None else None,
            company.id,
            action=FixAction.REVIEW,
            detail=f"company {company.id}: {problem}; a person corrects it in HubSpot",
        )

    def _stale_links(self, company: HubSpotCompany, ban: str | None) -> tuple[list[Finding], bool]:
        """Links still naming ids merged into this company: the merge left them behind. The
        sync re-points one only when it is the survivor's sole claimant; when several
        customers' companies were merged together, a person decides (the engine holds them)."""
        stale = [
            (link, customer)
            for m in self.merged_away.get(company.id, ())
            if (link := self.links.get(m)) is not None
            and (customer := self.by_id.get(link.warp_customer_id or "")) is not None
            and self.owner_of(customer["id"]) is None
        ]
        shared = len(stale) > 1 or company.id in self.links
        findings, relinked = [], False
        for link, customer in stale:
            findings.append(judge.merged_link(customer, link, company, ban, shared=shared))
            self.claimed[customer["id"]] = company.id
            relinked = relinked or normalize_ban(customer.get("ban")) == ban
        return findings, relinked

    def _linked(
        self,
        company: HubSpotCompany,
        link: Link,
        customer: dict[str, Any],
        ban: str | None,
        rules: Sequence[FieldRule],
    ) -> Finding:
        cid = customer["id"]
        if (holder := self.owner_of(cid)) is not None:
            return judge.duplicate(company, cid, ban, keep=holder)
        self.claimed[cid] = company.id
        if not self.scope.admits(customer):
            return Finding(Category.OUT_OF_SCOPE, cid, company.id, link.warp_ban)
        if link.state != "active":
            return judge.broken_link(company, link)
        return judge.judge_pair(
            rules, customer, company, link, self.memory.get(cid, {}), self.conflicts.get(cid, ())
        )

    def _by_ban(
        self, company: HubSpotCompany, link: Link | None, ban: str, rules: Sequence[FieldRule]
    ) -> Finding:
        customer = self.by_ban.get(ban)
        if customer is None:
            why = (
                f"its linked customer {link.warp_customer_id} is no longer in WARP and "
                f"warp_ban {ban} matches no customer; reported, never deleted"
                if link is not None and link.warp_customer_id
                else ""
            )
            return judge.orphan(company, ban, why)
        cid = customer["id"]
        holder = self.owner_of(cid)
        other = self.customer_links.get(cid)
        if holder is None and other is not None and other.state == "active":
            holder = other.hubspot_company_id
        if holder is not None and holder != company.id:
            return judge.duplicate(company, cid, ban, keep=holder)
        self.claimed[cid] = company.id
        if not self.scope.admits(customer):
            return Finding(Category.OUT_OF_SCOPE, cid, company.id, ban)
        return judge.judge_pair(rules, customer, company, None, self.memory.get(cid, {}))
