"""What a reconciliation finds, decided without I/O: every pair (or lone side) goes into
exactly one category, with what `fix` does about it.

A pair is judged by the engine's own pieces (`Pair.read_warp`, `Pair.read_hubspot`,
`decide_entity`), so a reconciliation reports exactly what a sync of that pair would do.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.hubspot.models import HubSpotCompany
from app.sync.core.decision import NOT_READ, Action
from app.sync.core.identity import ban_problem, normalize_ban, shown
from app.sync.core.jobs import JobSource, stand_in_job
from app.sync.core.mapping import MappingError
from app.sync.core.records import FieldMemory, Link
from app.sync.core.rules import IDENTITY_WARP_FIELD, FieldRule
from app.sync.engine.pairs import Pair


class Category(StrEnum):
    IN_SYNC = "in_sync"
    DRIFT = "drift"  # some field differs; the rules say which way it goes
    MISSING_IN_HUBSPOT = "missing_in_hubspot"  # a customer without a company
    ADOPT = "adopt"  # a company with a customer's warp_ban but no link
    ORPHAN = "orphan"  # a company whose warp_ban matches no customer: reported, never deleted
    DUPLICATE = "duplicate"  # a second company for one customer: a merge is suggested
    REPAIR = "repair"  # a link to an archived, merged or otherwise broken company
    CONFLICT = "conflict"  # a field a person must decide, or an open conflict
    ERROR = "error"  # a value that cannot be read
    UNMANAGED = "unmanaged"  # a company with no warp_ban and no link: not hubsync's (counted)
    OUT_OF_SCOPE = "out_of_scope"  # a customer the sync scope leaves out: counted, never fixed


# The categories that get an item in the report (the others are only counted).
REPORTED = tuple(
    c for c in Category if c not in (Category.IN_SYNC, Category.UNMANAGED, Category.OUT_OF_SCOPE)
)


class FixAction(StrEnum):
    SYNC = "sync"  # a customer job through the engine, both directions
    CREATE = "create"  # the engine upserts the company on warp_ban
    ADOPT = "adopt"  # the engine finds the company by warp_ban and links it
    RELINK = "relink"  # the engine follows the merge to the surviving company
    MERGE = "merge_companies"  # suggestion only: merge in HubSpot
    RESTORE = "restore_or_relink"  # suggestion only: a person restores or relinks
    REVIEW = "review"  # suggestion only


RELINK_HINT = "an operator relinks it (POST /v1/sync/customers/{id}/relink)"

FIXABLE = frozenset({FixAction.SYNC, FixAction.CREATE, FixAction.ADOPT, FixAction.RELINK})


@dataclass(frozen=True)
class Finding:
    category: Category
    customer_id: str | None = None
    company_id: str | None = None
    ban: str | None = None
    fields: list[dict[str, Any]] = field(default_factory=list)
    action: FixAction | None = None
    detail: str = ""

    @property
    def fixable(self) -> bool:
        return self.action in FIXABLE and self.customer_id is not None

    def item(self, job_id: int | None = None) -> dict[str, Any]:
        """The row of `hubspot_reconciliation_items` (without its run)."""
        return {
            "category": str(self.category),
            "warp_customer_id": self.customer_id,
            "hubspot_company_id": self.company_id,
            "warp_ban": self.ban,
            "fields": self.fields or None,
            "action": str(self.action) if self.action else None,
            "detail": self.detail or None,
            "job_id": job_id,
        }


def customer_ban(customer: Mapping[str, Any]) -> str | None:
    """The customer's ban as compared (`normalize_ban`)."""
    return normalize_ban(customer.get(IDENTITY_WARP_FIELD))


def unusable_customer(customer: Mapping[str, Any], company_id: str | None = None) -> Finding | None:
    """An `error` item for a customer whose ban hubsync cannot use (the engine refuses to
    sync it), or None."""
    ban = customer_ban(customer)
    if ban is None or (problem := ban_problem(ban)) is None:
        return None
    return Finding(
        Category.ERROR,
        str(customer["id"]),
        company_id,
        action=FixAction.REVIEW,
        detail=f"the customer's ban {shown(ban)!r} cannot be used: {problem}; a person "
        "corrects it in WARP",
    )


def judge_pair(  # noqa: PLR0917 - the pair's facts, each from its own store
    rules: Sequence[FieldRule],
    customer: Mapping[str, Any],
    company: HubSpotCompany,
    link: Link | None,
    memory: Mapping[str, FieldMemory],
    open_conflicts: Collection[str] = (),
) -> Finding:
    """A customer and its company (by link, or by warp_ban when `link` is None): in sync,
    drift, conflict, adopt (no link yet) or error."""
    customer_id = str(customer["id"])
    if (refused := unusable_customer(customer, company.id)) is not None:
        return refused
    ban = customer_ban(customer)
    pair = Pair(stand_in_job(customer_id, JobSource.RECONCILIATION), dict(customer), link, memory)
    try:
        pair.read_warp(rules)
        pair.read_hubspot(rules, company)
    except MappingError as exc:
        return Finding(
            Category.ERROR, customer_id, company.id, ban, action=FixAction.REVIEW, detail=str(exc)
        )
    decision = pair.decide(rules)
    fields = [
        {
            "field": d.field,
            "property": d.hubspot_property,
            "warp": d.warp_value,
            "hubspot": d.hubspot_value if d.hubspot_value is not NOT_READ else None,
            "base": d.base_value,
            "decision": str(d.action),
            "reason": d.reason,
        }
        for d in decision.fields
        if d.action is not Action.NONE or d.warp_value != d.hubspot_value
    ]
    unlinked = link is None or link.warp_customer_id is None
    if unlinked:
        return Finding(
            Category.ADOPT,
            customer_id,
            company.id,
            ban,
            fields,
            FixAction.ADOPT,
            f"company {company.id} holds warp_ban {ban} but is not linked: the sync links it",
        )
    if decision.conflicts or open_conflicts:
        names = sorted({c.field for c in decision.conflicts} | set(open_conflicts))
        return Finding(
            Category.CONFLICT,
            customer_id,
            company.id,
            ban,
            fields,
            FixAction.REVIEW,
            f"a person must decide: {', '.join(names)}",
        )
    if fields:
        drifted = ", ".join(str(f["field"]) for f in fields)
        return Finding(
            Category.DRIFT,
            customer_id,
            company.id,
            ban,
            fields,
            FixAction.SYNC,
            f"differs: {drifted}",
        )
    return Finding(Category.IN_SYNC, customer_id, company.id, ban)


def duplicate(company: HubSpotCompany, customer_id: str, ban: str | None, keep: str) -> Finding:
    return Finding(
        Category.DUPLICATE,
        customer_id,
        company.id,
        ban,
        action=FixAction.MERGE,
        detail=f"a second company for customer {customer_id}: merge {company.id} into {keep}",
    )


def orphan(company: HubSpotCompany, ban: str, why: str = "") -> Finding:
    detail = why or f"warp_ban {ban} matches no WARP customer; reported, never deleted"
    return Finding(Category.ORPHAN, None, company.id, ban, action=None, detail=detail)


def broken_link(company: HubSpotCompany, link: Link) -> Finding:
    """A live company whose link the engine set aside (deleted, merged into a company another
    customer holds, the customer deleted in WARP)."""
    return Finding(
        Category.REPAIR,
        link.warp_customer_id,
        company.id,
        link.warp_ban,
        action=FixAction.REVIEW,
        detail=f"company {company.id} is live but its link is '{link.state}': {RELINK_HINT}",
    )


def merged_link(
    customer: Mapping[str, Any],
    link: Link,
    survivor: HubSpotCompany,
    survivor_ban: str | None,
    *,
    shared: bool = False,
) -> Finding:
    """A customer linked to a company id that was merged into `survivor`: the sync re-points
    the link when the survivor holds this customer's ban (or none) and no other customer's
    company went into it (`shared`); otherwise a person decides."""
    ban = customer_ban(customer)
    old = link.hubspot_company_id
    if shared or survivor_ban not in (None, ban):
        why = (
            "together with another customer's company"
            if shared
            else f"which holds warp_ban {survivor_ban} of another customer"
        )
        return Finding(
            Category.REPAIR,
            str(customer["id"]),
            survivor.id,
            ban,
            action=FixAction.REVIEW,
            detail=f"company {old} was merged into {survivor.id} {why}: {RELINK_HINT}",
        )
    return Finding(
        Category.REPAIR,
        str(customer["id"]),
        survivor.id,
        ban,
        action=FixAction.RELINK,
        detail=f"company {old} was merged into {survivor.id}: the sync re-points the link",
    )


def missing_in_hubspot(customer: Mapping[str, Any]) -> Finding:
    if (refused := unusable_customer(customer)) is not None:
        return refused
    return Finding(
        Category.MISSING_IN_HUBSPOT,
        str(customer["id"]),
        None,
        customer_ban(customer),
        action=FixAction.CREATE,
        detail="no company in HubSpot: the sync creates it (upsert on warp_ban)",
    )


def lost_company(customer: Mapping[str, Any], link: Link, survivor: str | None) -> Finding:
    """A customer whose linked company is not among HubSpot's live companies."""
    ban = customer_ban(customer)
    if survivor is not None and link.state == "active":
        return Finding(
            Category.REPAIR,
            str(customer["id"]),
            link.hubspot_company_id,
            ban,
            action=FixAction.RELINK,
            detail=f"company {link.hubspot_company_id} was merged into {survivor}: the sync "
            "re-points the link",
        )
    what = "archived or deleted in HubSpot" if link.state == "active" else f"'{link.state}'"
    return Finding(
        Category.REPAIR,
        str(customer["id"]),
        link.hubspot_company_id,
        ban,
        action=FixAction.RESTORE,
        detail=f"linked company {link.hubspot_company_id} is {what}: restore it in HubSpot or "
        f"{RELINK_HINT} (never recreated on its own)",
    )
