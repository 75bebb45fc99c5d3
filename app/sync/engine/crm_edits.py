"""CRM edits a sync overwrote: HubSpot has no compare-and-set, so a person's edit made after
hubsync read a company and before hubsync wrote it is lost in HubSpot itself — the company
shows hubsync's value, equal to the merge base, and looks in sync.

The edit survives in its webhook. When a sync reads a company, the newest stored change of
each property HubSpot may win that hubsync did not make, if it happened after the read that
hubsync's last write of the field was decided on (the field's `hubspot_write_read_at`; for a
field hubsync has not written since that was recorded, the link's last read,
`hubspot_read_at`), is compared with what HubSpot holds now: if HubSpot still holds what
hubsync last wrote or saw there and the edit says otherwise, the edit was overwritten, and the
pair is decided with the edit's value and time (`Pair.take_overwritten_edits`) rather than
dropped as an echo. Whatever the decision, HubSpot is then written with the value both sides
end with.

The window is the write's own, not the link's last read: a webhook can come late (HubSpot
retries for a day, and reorders), after another sync has read the company and seen only
hubsync's value there. An edit that read did see is no longer news: HubSpot held it, so it is
what hubsync saw there, and nothing is taken back.

Own writes are known by `changeSource`/`sourceId` only when HUBSPOT_APP_ID is set; without it
an own write's event is the newest and nothing is recovered (the old behaviour). Event times
are HubSpot's clock, read times this process's: the read time is taken when HubSpot's answer
arrived, so an edit HubSpot's answer already held is never taken for an overwritten one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from app.store import webhook_events
from app.sync.core.rules import FieldRule
from app.sync.engine.pairs import Pair


async def recover_overwritten_edits(
    pairs: Sequence[Pair], rules: Sequence[FieldRule], *, db: AsyncEngine
) -> None:
    may_win = [r for r in rules if r.enabled and r.direction.writes_warp]
    if not may_win:
        return
    candidates: list[tuple[Pair, str]] = []
    since: dict[str, datetime] = {}
    for pair in pairs:
        company, link = pair.company, pair.link
        if company is None or not pair.company_read or link is None:
            continue
        if link.hubspot_read_at is None or link.hubspot_company_id != company.id:
            continue
        candidates.append((pair, company.id))
        since[company.id] = min(pair.edits_unseen_after(rule) for rule in may_win)
    if not candidates:
        return
    async with db.connect() as connection:
        edits = await webhook_events.crm_edits_since(
            connection, since, [r.hubspot_property for r in may_win]
        )
    for pair, company_id in candidates:
        if company_id in edits:
            pair.take_overwritten_edits(rules, edits[company_id])
