"""Webhook intake: stored once, routed per company (links, merges, deletions, restores, our
own writes), and closed when the jobs finish; the operators' view and re-run.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from app.store.webhook_events import finish_events_for_jobs
from app.sync.core.jobs import JobOutcome, OutcomeStatus
from tests.conftest import Database
from tests.webhook_support import (
    APP_ID,
    T0,
    TOKEN,
    aliases_t,
    change,
    deliver,
    jobs,
    jobs_t,
    lifecycle,
    link,
    links,
    service,
    stored,
)

# -- dedup -----------------------------------------------------------------------------------


async def test_duplicates_and_replays_store_one_event_and_queue_one_job(db: Database) -> None:
    async with service(db) as client:
        first = await deliver(client, [change(501), change(501, eventId=101)])
        replay = await deliver(client, [change(501, eventId=555, attemptNumber=3)])
    assert first.json()["stored"] == 1
    assert first.json()["duplicates"] == 1
    assert replay.status_code == 200
    assert replay.json()["duplicates"] == 1
    assert len(await stored(db)) == 1
    assert len(await jobs(db)) == 1


async def test_concurrent_duplicate_deliveries_store_one_event(db: Database) -> None:
    async with service(db) as client:
        responses = await asyncio.gather(*(deliver(client, [change(501)]) for _ in range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert sum(r.json()["stored"] for r in responses) == 1
    assert len(await stored(db)) == 1
    assert len(await jobs(db)) == 1


# -- routing ---------------------------------------------------------------------------------


async def test_a_linked_company_queues_its_customer_both_ways(db: Database) -> None:
    await link(db, "C-1", "501")
    async with service(db) as client:
        await deliver(client, [change(501), change(501, value="Acme 2", at=T0 + 1)])
    [job] = await jobs(db)
    assert (job.entity_type, job.entity_key, job.direction) == ("customer", "C-1", "both")
    assert {e.job_id for e in await stored(db)} == {job.id}


async def test_unknown_types_and_our_own_writes_are_stored_ignored(db: Database) -> None:
    ours = change(501, changeSource="INTEGRATION", sourceId=APP_ID)
    other_app = change(502, changeSource="INTEGRATION", sourceId="777")
    contact = change(9, subscriptionType="contact.propertyChange")
    async with service(db) as client:
        response = await deliver(client, [ours, other_app, contact])
    assert response.status_code == 200
    by_object = {e.object_id: e for e in await stored(db)}
    assert (by_object["501"].status, by_object["501"].status_reason) == (
        "ignored",
        "our own write",
    )
    assert by_object["9"].status == "ignored"
    assert "contact.propertyChange" in by_object["9"].status_reason
    assert by_object["502"].status == "queued"
    assert [j.entity_key for j in await jobs(db)] == ["502"]


async def test_deletion_marks_the_link_and_queues_nothing(db: Database) -> None:
    await link(db, "C-1", "501")
    async with service(db) as client:
        await deliver(client, [lifecycle("deletion", 501)])
        later = await deliver(client, [change(501, at=T0 + 5)])
    assert (await links(db))["501"] == ("C-1", "deleted")
    assert await jobs(db) == []
    events = await stored(db)
    assert events[0].status == "processed"
    assert "deleted" in events[0].status_reason
    assert later.json()["ignored"] == 1


async def test_restore_reactivates_the_link_and_queues_a_sync(db: Database) -> None:
    await link(db, "C-1", "501")
    async with service(db) as client:
        await deliver(client, [lifecycle("deletion", 501)])
        await deliver(client, [lifecycle("restore", 501, at=T0 + 10)])
    assert (await links(db))["501"] == ("C-1", "active")
    [job] = await jobs(db)
    assert (job.entity_type, job.entity_key) == ("customer", "C-1")


async def test_a_late_deletion_never_undoes_a_newer_restore(db: Database) -> None:
    await link(db, "C-1", "501")
    async with service(db) as client:
        await deliver(client, [lifecycle("restore", 501, at=T0 + 10)])
        late = await deliver(client, [lifecycle("deletion", 501, at=T0)])
    assert (await links(db))["501"] == ("C-1", "active")
    assert late.json()["ignored"] == 1


async def test_merge_aliases_old_ids_and_moves_the_link_to_the_new_record(db: Database) -> None:
    await link(db, "C-1", "501")
    await link(db, None, "502", state="unmatched")
    merge = lifecycle("merge", 900, primaryObjectId=501, mergedObjectIds=[502], newObjectId=900)
    async with service(db) as client:
        await deliver(client, [merge])
        # A late change to a merged-away id reaches the survivor's customer.
        await deliver(client, [change(502, at=T0 - 5)])
    now = await links(db)
    assert now["900"] == ("C-1", "active")
    assert "501" not in now
    assert now["502"] == (None, "merged")
    async with db.engine.connect() as connection:
        rows = await connection.execute(select(aliases_t.c.old_company_id, aliases_t.c.company_id))
        assert {r.old_company_id: r.company_id for r in rows} == {"501": "900", "502": "900"}
    [job] = await jobs(db)
    assert (job.entity_type, job.entity_key) == ("customer", "C-1")
    assert [e.status for e in await stored(db)] == ["queued", "queued"]


async def test_merge_of_two_linked_companies_keeps_the_primary_link(db: Database) -> None:
    await link(db, "C-1", "501")
    await link(db, "C-2", "502")
    merge = lifecycle("merge", 501, primaryObjectId=501, mergedObjectIds=[502])
    async with service(db) as client:
        await deliver(client, [merge])
    assert await links(db) == {"501": ("C-1", "active"), "502": ("C-2", "merged")}
    [job] = await jobs(db)
    assert job.entity_key == "C-1"


async def test_operators_list_events_and_reprocess_them(db: Database) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with service(db) as client:
        await deliver(
            client, [change(501), change(502, changeSource="INTEGRATION", sourceId=APP_ID)]
        )
        unauthorised = await client.get("/v1/webhooks/events")
        ignored = await client.get("/v1/webhooks/events?status=ignored", headers=auth)
        [event] = ignored.json()["events"]
        again = await client.post(
            "/v1/webhooks/events/reprocess", json={"event_ids": [event["id"]]}, headers=auth
        )
        listed = await client.get("/v1/webhooks/events?limit=10", headers=auth)
        bad = await client.get("/v1/webhooks/events?status=nope", headers=auth)
    assert unauthorised.status_code == 401
    assert event["object_id"] == "502"
    assert again.status_code == 200, again.text
    assert again.json()["queued"] == 1
    assert [e["status"] for e in listed.json()["events"]] == ["queued", "queued"]
    assert bad.status_code == 422
    async with db.engine.connect() as connection:
        count = await connection.execute(select(func.count()).select_from(jobs_t))
        assert count.scalar_one() == 2


# -- closing events when their jobs finish ---------------------------------------------------


async def test_finished_jobs_close_their_events(db: Database) -> None:
    async with service(db) as client:
        await deliver(client, [change(501), change(502), change(503)])
    by_object = {e.object_id: e.job_id for e in await stored(db)}
    outcomes = [
        JobOutcome(by_object["501"], OutcomeStatus.DONE),
        JobOutcome(by_object["502"], OutcomeStatus.FAILED, error="HubSpot said 400: bad value"),
        JobOutcome(by_object["503"], OutcomeStatus.RETRY, error="429"),
    ]
    async with db.engine.begin() as connection:
        await finish_events_for_jobs(connection, outcomes)
    after = {e.object_id: e for e in await stored(db)}
    assert (after["501"].status, after["501"].processed_at is not None) == ("processed", True)
    assert (after["502"].status, after["502"].status_reason) == (
        "failed",
        "HubSpot said 400: bad value",
    )
    assert after["503"].status == "queued"


async def test_events_of_a_superseded_job_close_with_the_job_that_absorbed_it(
    db: Database,
) -> None:
    async with service(db) as client:
        await deliver(client, [change(501)])
    [first] = await jobs(db)
    # The queue folds a retried job into a newer pending one of the same entity.
    async with db.engine.begin() as connection:
        await connection.execute(
            jobs_t.update()
            .where(jobs_t.c.id == first.id)
            .values(state="done", last_error_kind="superseded")
        )
        newer = await connection.execute(
            jobs_t.insert()
            .values(entity_type="company", entity_key="501", direction="to_warp")
            .returning(jobs_t.c.id)
        )
        newer_id = newer.scalar_one()
        await finish_events_for_jobs(connection, [JobOutcome(newer_id, OutcomeStatus.DONE)])
    [event] = await stored(db)
    assert event.status == "processed"
