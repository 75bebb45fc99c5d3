"""Pausing a direction: its jobs wait (still queued, nothing lost), the other direction runs,
and resuming lets them go. A job going both ways runs while one direction is paused (the
engine holds its writes to the paused side: tests/integration/test_pause_writes.py) and waits
while both are."""

from __future__ import annotations

import pytest

from app.store.pauses import (
    UnknownDirectionError,
    pause_direction,
    paused_directions,
    resume_direction,
)
from app.sync.core.jobs import EntityType, JobDirection, JobSource
from tests.conftest import Database
from tests.integration.queue_support import make_queue


async def _enqueue(db: Database, key: str, entity: EntityType, direction: JobDirection) -> int:
    queue = make_queue(db.engine)
    async with db.engine.begin() as connection:
        queued = await queue.enqueue(
            connection, entity, key, source=JobSource.API, direction=direction
        )
    return queued.job_id


async def _pause(db: Database, direction: str) -> bool:
    async with db.engine.begin() as connection:
        return await pause_direction(connection, direction, by="test", reason="maintenance")


async def _resume(db: Database, direction: str) -> bool:
    async with db.engine.begin() as connection:
        return await resume_direction(connection, direction)


async def test_paused_outbound_jobs_wait_and_inbound_ones_run(db: Database) -> None:
    outbound = await _enqueue(db, "c-out", EntityType.CUSTOMER, JobDirection.TO_HUBSPOT)
    both = await _enqueue(db, "c-both", EntityType.CUSTOMER, JobDirection.BOTH)
    inbound = await _enqueue(db, "co-in", EntityType.COMPANY, JobDirection.TO_WARP)
    assert await _pause(db, "outbound")
    assert not await _pause(db, "outbound")  # already paused: the first record stays
    queue = make_queue(db.engine)

    claimed = await queue.claim("w", 10, 30)

    assert sorted(job.id for job in claimed) == sorted([inbound, both])
    counts = await queue.counts()
    assert counts["pending"] == 1  # still queued, not lost
    assert await _resume(db, "outbound")
    assert not await _resume(db, "outbound")
    assert [job.id for job in await queue.claim("w", 10, 30)] == [outbound]


async def test_paused_inbound_holds_to_warp(db: Database) -> None:
    outbound = await _enqueue(db, "c-out", EntityType.CUSTOMER, JobDirection.TO_HUBSPOT)
    both = await _enqueue(db, "c-both", EntityType.CUSTOMER, JobDirection.BOTH)
    await _enqueue(db, "co-in", EntityType.COMPANY, JobDirection.TO_WARP)
    await _pause(db, "inbound")
    claimed = await make_queue(db.engine).claim("w", 10, 30)
    assert sorted(job.id for job in claimed) == sorted([outbound, both])
    async with db.engine.connect() as connection:
        paused = await paused_directions(connection)
    assert list(paused) == ["inbound"]
    assert paused["inbound"].paused_by == "test"
    assert paused["inbound"].reason == "maintenance"


async def test_both_paused_holds_every_job(db: Database) -> None:
    for key, entity, direction in (
        ("c-out", EntityType.CUSTOMER, JobDirection.TO_HUBSPOT),
        ("c-both", EntityType.CUSTOMER, JobDirection.BOTH),
        ("co-in", EntityType.COMPANY, JobDirection.TO_WARP),
    ):
        await _enqueue(db, key, entity, direction)
    await _pause(db, "outbound")
    await _pause(db, "inbound")
    queue = make_queue(db.engine)
    assert await queue.claim("w", 10, 30) == []
    await _resume(db, "inbound")
    assert sorted(job.entity_key for job in await queue.claim("w", 10, 30)) == ["c-both", "co-in"]


async def test_an_unknown_direction_is_refused(db: Database) -> None:
    with pytest.raises(UnknownDirectionError, match="outbound, inbound"):
        await _pause(db, "sideways")
