"""Group commit of webhook deliveries: deliveries arriving together share one transaction, and
each still answers 200 only after that commit, with duplicates recognised across the group,
a failed commit failing every member, a bad member failing alone, and nothing dropped when
the service stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from app.store.db import create_engine
from app.store.queue import QueueRepository
from app.sync.core.events import IncomingEvent, parse_delivery
from app.sync.intake.routing import DeliverySummary
from app.sync.intake.writer import IntakeUnavailableError, IntakeWriter
from tests.conftest import Database, _libpq
from tests.support import running_service
from tests.webhook_support import APP_ID, T0, change, deliver, encode, jobs, settings_for, stored

# Long enough that every delivery submitted together lands in one group, even on a busy CI.
GROUP_WINDOW = 0.2


def delivery(*events: dict[str, Any]) -> list[IncomingEvent]:
    return parse_delivery(encode(list(events)))


@asynccontextmanager
async def writer_on(db: Database, **options: Any) -> AsyncIterator[IntakeWriter]:
    writer = IntakeWriter(
        db.engine,
        QueueRepository(db.engine),
        app_id=APP_ID,
        max_wait_seconds=GROUP_WINDOW,
        **options,
    )
    await writer.start()
    try:
        yield writer
    finally:
        await writer.stop()


async def submit_together(
    writer: IntakeWriter, deliveries: Sequence[list[IncomingEvent]]
) -> list[DeliverySummary | BaseException]:
    return await asyncio.gather(*(writer.submit(d) for d in deliveries), return_exceptions=True)


def fail_every_commit(db: Database, engine: AsyncEngine) -> None:
    """Every COMMIT fails, and so, on PostgreSQL, does every statement that stores events (the
    intake's one-statement write there commits by itself, and goes to asyncpg directly, past
    SQLAlchemy's events: it is refused by the server, as a full disk would)."""

    def refuse(_connection: Any) -> None:
        raise OperationalError("COMMIT", {}, Exception("could not write the WAL"))

    event.listen(engine.sync_engine, "commit", refuse)
    if db.kind == "postgresql":
        execute_in(
            db,
            """
            CREATE FUNCTION refuse_store() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'could not write the WAL'; END $$;
            CREATE TRIGGER refuse_store BEFORE INSERT ON hubspot_webhook_events
            FOR EACH STATEMENT EXECUTE FUNCTION refuse_store();
            """,
        )


async def test_deliveries_arriving_together_share_one_transaction(db: Database) -> None:
    async with writer_on(db) as writer:
        results = await submit_together(writer, [delivery(change(500 + n)) for n in range(10)])
    assert all(isinstance(r, DeliverySummary) and r.stored == 1 for r in results)
    assert list(writer.stats.recent_sizes) == [10]
    assert len(await stored(db)) == 10
    assert len(await jobs(db)) == 10


async def test_a_duplicate_of_another_member_is_stored_once(db: Database) -> None:
    first = delivery(change(501), change(502))
    retried = delivery(change(501, eventId=555, attemptNumber=2))  # same change, new attempt
    async with writer_on(db) as writer:
        results = await submit_together(writer, [first, retried])
    assert list(writer.stats.recent_sizes) == [2]
    one, two = results
    assert isinstance(one, DeliverySummary)
    assert isinstance(two, DeliverySummary)
    assert (one.stored, one.duplicates, one.queued) == (2, 0, 2)
    assert (two.stored, two.duplicates, two.queued) == (0, 1, 0)
    assert sorted(e.object_id for e in await stored(db)) == ["501", "502"]
    assert sorted(j.entity_key for j in await jobs(db)) == ["501", "502"]


async def test_a_failing_commit_fails_every_member_and_stores_nothing(db: Database) -> None:
    fail_every_commit(db, db.engine)
    async with writer_on(db) as writer:
        results = await submit_together(writer, [delivery(change(500 + n)) for n in range(3)])
    assert [type(r) for r in results] == [IntakeUnavailableError] * 3
    assert writer.stats.recent_sizes[0] == 3
    assert await stored(db) == []
    assert await jobs(db) == []


async def test_a_failing_commit_answers_503_to_every_delivery(db: Database) -> None:
    settings = settings_for(db)
    async with running_service(create_app(settings)) as (client, context):
        fail_every_commit(db, context.engine)
        responses = await asyncio.gather(*(deliver(client, [change(500 + n)]) for n in range(6)))
    assert [r.status_code for r in responses] == [503] * 6
    assert all("not stored" in r.json()["detail"] for r in responses)
    assert await stored(db) == []


@pytest.mark.parametrize("writers", [1, 2])
async def test_stop_writes_every_waiting_delivery_then_refuses(db: Database, writers: int) -> None:
    writer = IntakeWriter(
        db.engine,
        QueueRepository(db.engine),
        app_id=APP_ID,
        max_wait_seconds=GROUP_WINDOW,
        writers=writers,
    )
    await writer.start()
    waiting = [asyncio.create_task(writer.submit(delivery(change(500 + n)))) for n in range(5)]
    await asyncio.sleep(0.01)  # all five are waiting for the group window to close
    await writer.stop()
    results = [task.result() for task in waiting]  # every one answered, none cancelled
    assert [r.stored for r in results] == [1] * 5
    assert len(await stored(db)) == 5
    with pytest.raises(IntakeUnavailableError):
        await writer.submit(delivery(change(600)))


async def test_the_service_stops_after_answering_deliveries_in_flight(db: Database) -> None:
    settings = settings_for(db)
    async with running_service(create_app(settings)) as (client, _context):
        responses = await asyncio.gather(*(deliver(client, [change(500 + n)]) for n in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert len(await stored(db)) == 20


# -- PostgreSQL: failures the database itself raises -----------------------------------------


def postgres_database(url: str) -> Database:
    return Database("postgresql", url, create_engine(url, pool_size=2), "accounts.customers")


def execute_in(db: Database, sql: str) -> None:
    with psycopg.connect(_libpq(db.url), autocommit=True) as connection:
        connection.execute(sql.encode())


@pytest.mark.postgres
async def test_a_commit_refused_by_postgresql_is_503_for_the_whole_group(
    postgres_url: str,
) -> None:
    db = postgres_database(postgres_url)
    # A deferred constraint trigger runs at COMMIT: the commit itself fails.
    execute_in(
        db,
        """
        CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
        CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON hubspot_webhook_events
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();
        """,
    )
    try:
        async with running_service(create_app(settings_for(db))) as (client, context):
            responses = await asyncio.gather(
                *(deliver(client, [change(500 + n, at=T0 + n)]) for n in range(8))
            )
            groups = context.intake.stats.recent_sizes
        assert [r.status_code for r in responses] == [503] * 8
        assert max(groups) > 1  # they did share a transaction
        assert await stored(db) == []
        assert await jobs(db) == []
    finally:
        await db.engine.dispose()


@pytest.mark.postgres
async def test_one_bad_delivery_fails_alone(postgres_url: str) -> None:
    db = postgres_database(postgres_url)
    execute_in(
        db,
        """
        CREATE FUNCTION refuse_666() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN IF NEW.object_id = '666' THEN RAISE EXCEPTION 'no'; END IF; RETURN NEW; END $$;
        CREATE TRIGGER refuse_666 BEFORE INSERT ON hubspot_webhook_events
        FOR EACH ROW EXECUTE FUNCTION refuse_666();
        """,
    )
    try:
        async with writer_on(db) as writer:
            good, bad, also_good = await submit_together(
                writer, [delivery(change(501)), delivery(change(666)), delivery(change(502))]
            )
        assert isinstance(good, DeliverySummary)
        assert good.stored == 1
        assert isinstance(bad, IntakeUnavailableError)
        assert isinstance(also_good, DeliverySummary)
        assert also_good.stored == 1
        assert writer.stats.recent_sizes[0] == 3  # tried together first, then one by one
        assert sorted(e.object_id for e in await stored(db)) == ["501", "502"]
    finally:
        await db.engine.dispose()


@pytest.mark.postgres
async def test_connections_postgresql_closed_while_idle_do_not_fail_a_delivery(
    postgres_url: str,
) -> None:
    db = postgres_database(postgres_url)
    try:
        async with running_service(create_app(settings_for(db))) as (client, _context):
            before = await deliver(client, [change(501)])
            # What a restart or an idle timeout does to the pooled connections.
            execute_in(
                db,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            after = await deliver(client, [change(502)])
        assert (before.status_code, after.status_code) == (200, 200), after.text
        assert len(await stored(db)) == 2
    finally:
        await db.engine.dispose()
