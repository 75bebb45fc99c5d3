"""Bulk enqueue from many replicas at once, on PostgreSQL: overlapping id sets in any order
never deadlock (keys are locked in one order), a deadlock the database still finds is retried
as a whole transaction, and an enqueue that cannot commit is a 503 with Retry-After."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from app.api import sync_jobs
from app.main import create_app
from app.store.db import create_engine
from app.store.queue import PENDING, QUEUE, QueueRepository
from app.store.transactions import TransactionConflictError, retry_transaction
from tests.conftest import Database, _admin
from tests.integration.queue_support import enqueue_keys
from tests.integration.test_job_api import AUTH, TOKEN, add_customers
from tests.support import api_only_settings, running

pytestmark = pytest.mark.postgres


# PostgreSQL looks for a deadlock once per lock wait, `deadlock_timeout` after it began, and
# aborts the transaction that looked. The transactions under test (the victims) wait this long
# before looking, time enough for the test's own transaction to close the cycle; the test's
# own look comes much later, so the victim is always the one aborted.
VICTIM_DEADLOCK_TIMEOUT = "2s"
DRIVER_DEADLOCK_TIMEOUT = "30s"


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Database]:
    name = make_url(postgres_url).database
    _admin(f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '{VICTIM_DEADLOCK_TIMEOUT}'")
    engine = create_engine(postgres_url, pool_size=10)
    try:
        yield Database("postgresql", postgres_url, engine, "accounts.customers")
    finally:
        await engine.dispose()


async def pending_keys(pg: Database) -> list[str]:
    async with pg.engine.connect() as connection:
        rows = await connection.execute(select(QUEUE.c.entity_key).where(QUEUE.c.state == PENDING))
        return [row.entity_key for row in rows]


async def test_overlapping_bulk_enqueues_in_any_order_never_deadlock(pg: Database) -> None:
    """Four transactions at a time, each 3,000 keys in its own order, half of them already
    pending (the upsert's update path) — the shape that deadlocked two replicas."""
    queue = QueueRepository(pg.engine)
    keys = [f"c-{n:05d}" for n in range(4000)]
    await enqueue_keys(queue, keys[::2])
    shuffler = random.Random(19)
    for _ in range(3):
        orders = []
        for start in (0, 1000, 500, 1000):
            chosen = keys[start : start + 3000]
            shuffler.shuffle(chosen)
            orders.append(chosen)
        await asyncio.gather(*(enqueue_keys(queue, order) for order in orders))
    queued = await pending_keys(pg)
    assert sorted(queued) == keys  # every key, once


async def lock_pending(connection: AsyncConnection, key: str) -> None:
    await connection.execute(
        text(
            "UPDATE hubspot_sync_queue SET updated_at = now() "
            "WHERE entity_key = :key AND state = 'pending'"
        ),
        {"key": key},
    )


async def deadlock_once(pg: Database, victim: asyncio.Future[None], b_held: asyncio.Event) -> None:
    """Hold "b" (and say so: the victim, holding "a", asks for "b" only then, or it could take
    both and commit before "b" is held here), wait until `victim` waits for "b", then ask for
    "a": a real deadlock, which PostgreSQL breaks by aborting whoever waited longer (the
    victim)."""
    async with pg.engine.begin() as connection:
        await connection.exec_driver_sql(
            f"SET LOCAL deadlock_timeout = '{DRIVER_DEADLOCK_TIMEOUT}'"
        )
        await lock_pending(connection, "b")
        b_held.set()
        await waiting_for_lock(pg)
        await lock_pending(connection, "a")
    await victim


async def waiting_for_lock(pg: Database) -> None:
    for _ in range(1000):
        async with pg.engine.connect() as connection:
            waiting = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the other transaction never waited for the lock")


async def test_a_deadlocked_transaction_runs_again_and_commits(pg: Database) -> None:
    queue = QueueRepository(pg.engine)
    await enqueue_keys(queue, ["a", "b"])
    tries = 0
    b_held = asyncio.Event()

    async def enqueue_a_then_b() -> None:
        nonlocal tries
        tries += 1
        async with pg.engine.begin() as connection:
            await lock_pending(connection, "a")
            await b_held.wait()
            await lock_pending(connection, "b")

    victim = asyncio.ensure_future(retry_transaction(enqueue_a_then_b, what="test"))
    await deadlock_once(pg, victim, b_held)
    assert tries == 2  # aborted once by the deadlock, then committed


async def test_a_transaction_deadlocked_on_every_try_is_a_conflict_error(pg: Database) -> None:
    queue = QueueRepository(pg.engine)
    await enqueue_keys(queue, ["a", "b"])

    b_held = asyncio.Event()

    async def enqueue_a_then_b() -> None:
        async with pg.engine.begin() as connection:
            await lock_pending(connection, "a")
            await b_held.wait()
            await lock_pending(connection, "b")

    victim = asyncio.ensure_future(retry_transaction(enqueue_a_then_b, tries=1, what="test"))
    with pytest.raises(TransactionConflictError, match="40P01"):
        await deadlock_once(pg, victim, b_held)


@pytest.fixture
async def client(pg: Database) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_only_settings(pg.env, TOKEN)
    async with running(create_app(settings)) as http:
        yield http


async def test_concurrent_bulk_requests_in_opposite_orders_all_answer_202(
    client: httpx.AsyncClient, pg: Database
) -> None:
    ids = await add_customers(pg, 3000)
    orders = [ids, ids[::-1], ids[1000:] + ids[:1000], ids[::2] + ids[1::2]]
    answers = await asyncio.gather(
        *(
            client.post("/v1/sync/customers/queue", json={"customer_ids": order}, headers=AUTH)
            for order in orders
        )
    )
    assert [answer.status_code for answer in answers] == [202] * len(orders), [
        answer.text for answer in answers if answer.status_code != 202
    ]
    assert sorted(await pending_keys(pg)) == sorted(ids)


async def test_a_bulk_enqueue_that_cannot_commit_is_a_503_with_retry_after(
    client: httpx.AsyncClient, pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one try only, the deadlock's victim (the request) cannot commit: 503, nothing
    queued, and the client told when to come back."""
    monkeypatch.setattr(sync_jobs, "ENQUEUE_TRIES", 1)
    first, second = sorted(await add_customers(pg, 2))
    await enqueue_keys(QueueRepository(pg.engine), [first, second])
    # The route locks `first`, then waits for `second`, which this transaction holds; when
    # this one asks for `first`, the route is the victim.
    async with pg.engine.begin() as connection:
        await connection.exec_driver_sql(
            f"SET LOCAL deadlock_timeout = '{DRIVER_DEADLOCK_TIMEOUT}'"
        )
        await lock_pending(connection, second)
        request = asyncio.ensure_future(
            client.post(
                "/v1/sync/customers/queue",
                json={"customer_ids": [first, second], "priority": 1},
                headers=AUTH,
            )
        )
        await waiting_for_lock(pg)
        await lock_pending(connection, first)
    answer = await request
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"].isdigit()
    assert answer.json()["error"] == "unavailable"
    async with pg.engine.connect() as connection:
        priorities = await connection.scalars(select(QUEUE.c.priority))
        assert sorted(priorities) == [5, 5]  # the request's priority 1 was never applied
