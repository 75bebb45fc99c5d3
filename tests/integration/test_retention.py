"""Old webhook events and sync log entries are pruned in bounded batches; what still needs a
person (failed events, failed syncs not yet followed by a good one) is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.main import create_app
from app.store.retention import events_t, prune_sync_log, prune_webhook_events, sync_log_t
from tests.conftest import Database
from tests.support import running_service
from tests.webhook_support import settings_for

RETENTION = timedelta(days=30)
OLD = datetime.now(UTC) - timedelta(days=45)
NEW = datetime.now(UTC) - timedelta(days=1)


async def add_events(db: Database, rows: list[tuple[str, datetime]]) -> None:
    async with db.engine.begin() as connection:
        await connection.execute(
            events_t.insert(),
            [
                {
                    "dedup_key": f"key-{n}",
                    "subscription_type": "company.propertyChange",
                    "raw": {"n": n},
                    "status": status,
                    "received_at": at,
                }
                for n, (status, at) in enumerate(rows)
            ],
        )


async def test_old_finished_events_go_and_failed_ones_stay(db: Database) -> None:
    await add_events(
        db,
        [("processed", OLD)] * 5
        + [("ignored", OLD), ("failed", OLD), ("queued", OLD), ("processed", NEW)],
    )
    deleted = await prune_webhook_events(db.engine, RETENTION, batch_size=2, max_batches=2)
    assert deleted == 4  # bounded: two batches of two this run
    deleted = await prune_webhook_events(db.engine, RETENTION, batch_size=2, max_batches=10)
    assert deleted == 2
    async with db.engine.connect() as connection:
        left = sorted((await connection.execute(select(events_t.c.status))).scalars())
    assert left == ["failed", "processed", "queued"]


async def test_old_log_entries_go_unless_a_failure_is_not_yet_handled(db: Database) -> None:
    def entry(customer: str, outcome: str, at: datetime) -> dict[str, object]:
        return {
            "warp_customer_id": customer,
            "source": "api",
            "direction": "to_hubspot",
            "outcome": outcome,
            "created_at": at,
        }

    async with db.engine.begin() as connection:
        await connection.execute(
            sync_log_t.insert(),
            [
                entry("a", "updated", OLD),
                entry("b", "failed", OLD),  # handled by the later success below
                entry("b", "updated", OLD),
                entry("c", "failed", OLD),  # nothing since: kept
                entry("d", "updated", NEW),
            ],
        )
    assert await prune_sync_log(db.engine, RETENTION) == 3
    async with db.engine.connect() as connection:
        left = (
            await connection.execute(
                select(sync_log_t.c.warp_customer_id, sync_log_t.c.outcome).order_by(
                    sync_log_t.c.id
                )
            )
        ).all()
    assert [tuple(row) for row in left] == [("c", "failed"), ("d", "updated")]


async def test_the_scheduler_runs_the_pruning(db: Database) -> None:
    settings = settings_for(db, HUBSYNC_SCHEDULER="true", HUBSYNC_HISTORY_RETENTION="30d")
    async with running_service(create_app(settings)) as (_client, context):
        job = context.scheduler.get_job("history-pruning")
        assert job is not None
        await add_events(db, [("processed", OLD)])
        await job.func()
    async with db.engine.connect() as connection:
        assert (await connection.execute(select(events_t.c.id))).first() is None
