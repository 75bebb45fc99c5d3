"""`Pair.hold`: what goes to a paused side is left unwritten, field by field, and its state
is not recorded, so the sync after the resume decides it again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.hubspot.models import HubSpotCompany
from app.sync.core.jobs import ClaimedJob, EntityType, JobDirection, JobSource
from app.sync.core.records import FieldMemory, Link
from app.sync.core.rules import DEFAULT_RULES
from app.sync.engine.pairs import Pair

RULES = list(DEFAULT_RULES)
EARLIER = datetime(2026, 1, 1, tzinfo=UTC)


def pair(company_id: str | None = "77", recorded: str | None = "77") -> Pair:
    """A customer whose status changed in WARP and whose name changed in HubSpot."""
    job = ClaimedJob(1, EntityType.CUSTOMER, "c-1", JobDirection.BOTH, JobSource.API, 5, 1, EARLIER)
    customer = {
        "id": "c-1",
        "ban": "ZT-1",
        "company_name": "Old Name",
        "status": "SUSPENDED",
        "external_ids": {"hubspot_company_id": recorded} if recorded else {},
        "updated_at": EARLIER + timedelta(hours=1),
    }
    memory = {
        "company_name": FieldMemory("Old Name", "Old Name", "Old Name", EARLIER, EARLIER, EARLIER),
        "status": FieldMemory("ACTIVE", "ACTIVE", "ACTIVE", EARLIER, EARLIER, EARLIER),
    }
    link = Link(1, "c-1", company_id, "ZT-1", "active") if company_id else None
    made = Pair(job, customer, link, memory)
    made.read_warp(RULES)
    if company_id is not None:
        properties = {"name": "New Name", "warp_status": "ACTIVE", "warp_ban": "ZT-1"}
        made.read_hubspot(RULES, HubSpotCompany(company_id, properties))
    else:
        made.read_hubspot(RULES, None)
    made.decide(RULES)
    return made


def state_fields(held: Pair) -> set[str]:
    return {row["field"] for row in held.field_state_rows(datetime.now(UTC))}


def test_outbound_paused_holds_hubspot_writes_and_their_state() -> None:
    held = pair()
    assert held.decision is not None
    assert "warp_status" in held.decision.hubspot_writes

    held.hold(hubspot=True, warp=False)

    assert "warp_status" not in held.decision.hubspot_writes
    assert held.held_hubspot["warp_status"] == "SUSPENDED"
    assert held.warp_updates(RULES) == {"company_name": "New Name"}  # inbound still written
    assert "status" not in state_fields(held)
    assert "company_name" in state_fields(held)
    assert (held.holds_hubspot, held.holds_warp) == (True, False)
    assert [c["field"] for c in held.changes()] == ["company_name"]


def test_inbound_paused_holds_warp_writes_and_the_company_id() -> None:
    held = pair(recorded=None)

    held.hold(hubspot=False, warp=True)

    assert held.warp_updates(RULES) == {}
    assert held.warp_company_id() is None
    assert held.held() == {
        "to_hubspot": [],
        "to_warp": ["company_name", "external_ids.hubspot_company_id"],
        "create_company": False,
    }
    assert held.decision is not None
    assert "warp_status" in held.decision.hubspot_writes  # outbound still written
    assert "company_name" not in state_fields(held)


def test_a_company_to_create_holds_the_whole_customer() -> None:
    held = pair(company_id=None, recorded=None)

    held.hold(hubspot=True, warp=False)

    assert held.held_create
    assert held.warp_updates(RULES) == {}
    assert state_fields(held) == set()
    assert held.changes() == []


def test_nothing_paused_holds_nothing() -> None:
    held = pair()
    held.hold(hubspot=False, warp=False)
    assert held.held() is None
    assert held.held_fields == set()
