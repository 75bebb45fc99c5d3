"""Issue 12, case 14: one event the database cannot store (a NUL character, a lone surrogate,
an occurredAt or attemptNumber out of range, a merge naming 20,000 ids) made the whole
delivery fail on every retry, and the good events in it were lost when HubSpot gave up.

Now such an event is stored (its raw form made storable) and marked failed with the reason,
the other events of the delivery are stored and queued as usual, and the log names the cause.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.conftest import Database
from tests.webhook_support import T0, change, deliver, jobs, lifecycle, service, stored

MERGE_OF_20000 = {
    **lifecycle("merge", 502),
    "primaryObjectId": 502,
    "mergedObjectIds": list(range(10**9, 10**9 + 20_000)),
}

UNSTORABLE: dict[str, tuple[dict[str, Any], str]] = {
    "nul in a value": (change(502, value="Ac\x00me"), "NUL"),
    "nul in a property name": (change(502, propertyName="na\x00me"), "NUL"),
    "lone surrogate": (change(502, value="Acme \ud800"), "surrogate"),
    "occurredAt far future": (change(502, at=10**17), "occurredAt"),
    "occurredAt before 1970": (change(502, at=-(10**14)), "occurredAt"),
    "attemptNumber too large": (change(502, attemptNumber=2**40), "attemptNumber"),
    "merge of 20,000 ids": (MERGE_OF_20000, "mergedObjectIds"),
}


@pytest.mark.parametrize("case", sorted(UNSTORABLE))
async def test_one_unstorable_event_never_fails_the_delivery(
    db: Database, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad, named = UNSTORABLE[case]
    caplog.set_level(logging.WARNING, logger="hubsync")
    async with service(db) as client:
        answer = await deliver(client, [change(501, "Good", at=T0), bad, change(503, at=T0 + 5)])
        again = await deliver(client, [bad])  # HubSpot's retry: a duplicate, still a 200
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 3
    assert answer.json()["queued"] == 2
    assert answer.json()["failed"] == 1
    assert again.status_code == 200
    rows = {row.object_id: row for row in await stored(db)}
    assert rows["501"].status == "queued"
    assert rows["503"].status == "queued"
    assert rows["502"].status == "failed"
    assert named in (rows["502"].status_reason or "")
    assert isinstance(rows["502"].raw, dict)  # kept, in a form the database holds
    assert sorted(job.entity_key for job in await jobs(db)) == ["501", "503"]
    assert any(named in record.getMessage() for record in caplog.records)


async def test_a_malformed_event_is_still_refused_whole_with_a_400(db: Database) -> None:
    async with service(db) as client:
        answer = await deliver(client, [change(501), {"subscriptionType": "company.creation"}])
    assert answer.status_code == 400
    assert "objectId" in answer.json()["detail"]
    assert await stored(db) == []
