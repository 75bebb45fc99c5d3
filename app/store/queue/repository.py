"""The durable sync queue (`hubspot_sync_queue`): enqueue, claim, complete, and keep it healthy.

The rules, each enforced by the database rather than by hoping:

* A job exists iff the caller's transaction committed: `enqueue` runs on the caller's
  connection, and on PostgreSQL sends `NOTIFY hubsync_queue` in that same transaction (so
  listeners hear of it exactly when it becomes visible).
* One pending job per entity (a partial unique index): a second request for the same entity is
  coalesced into it by `INSERT … ON CONFLICT … DO UPDATE` (the more urgent priority and the
  earlier run time win) — never by check-then-insert. A request while the entity's job runs
  creates exactly one follow-up pending job.
* One running job per entity (the other partial unique index): `claim` skips entities that
  are running, and the index is the last guard if two claims race.
* Strict priority, with ageing: a job due for a while is lifted one priority level per
  `ageing_seconds`, so urgent traffic cannot starve a backfill (`age_pending`).
* Claims are leases: a worker heartbeats (`extend_lease`); `rescue_expired` returns jobs of a
  worker that stopped heartbeating. Delivery is at-least-once, so handlers are idempotent.
* A job returning to pending while its entity already has a newer pending job is folded into
  that job (marked done, `last_error_kind='superseded'`), so nothing is lost and the unique
  index still holds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache, partial
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    Interval,
    String,
    bindparam,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.metrics.instruments import FinishedJob, observe_finished
from app.sql import (
    PostgresStatement,
    any_of,
    any_param,
    fetch_under_lock,
    postgres_sql,
)
from app.store.db import each_statement_committed
from app.store.models import Timestamp
from app.store.pauses import job_not_paused
from app.store.queue.enqueue import upsert_pending, upsert_pending_each
from app.store.queue.maintenance import (
    REQUEUE_CHUNK,
    age_pending,
    database_now,
    prune_done,
    requeue_failed,
    rescue_expired,
)
from app.store.queue.pending import PendingReturn, least, return_to_pending
from app.store.queue.records import (
    DONE,
    FAILED,
    PENDING,
    QUEUE,
    RUNNING,
    SQL_STATE,
    STATES,
    BulkEnqueued,
    CompletionSummary,
    Enqueued,
    EntityBusyError,
    JobRecord,
    as_utc,
    claimed_job,
    sql_now,
    still_handed,
    utc_now,
)
from app.sync.core.backoff import RetryPolicy
from app.sync.core.jobs import ClaimedJob, JobDirection, JobOutcome, JobSource, OutcomeStatus

log = logging.getLogger("hubsync.queue")

T = TypeVar("T")
ENQUEUE_CHUNK = 500  # rows per INSERT: 9 parameters each stays far below every driver's limit
RACE_RETRIES = 5  # a unique-index race is rare and resolves on the next try
MAX_ERROR_CHARS = 4000
DEFAULT_AGEING_SECONDS = 60.0
# Every claim of a job row takes the next fencing token (app/store/queue/fence.py).
NEXT_CLAIM = func.coalesce(QUEUE.c.claim, 0) + 1


# The deployment's claims, one at a time (PostgreSQL; SQLite's single writer does it anyway).
_CLAIM_LOCK = 7462157061729534320  # "hubsync:claim"


@cache
def _claim_postgres() -> PostgresStatement:
    return postgres_sql(_claim_statement(postgres=True))


@cache
def _claim_statement(*, postgres: bool) -> Any:
    """The claim, built once per dialect (the worker runs it several times a second): every
    value is a parameter — worker_id, limit, and the lease (an interval added to the
    server's now() on PostgreSQL; `now` and `lease_until` computed here on SQLite)."""
    running = QUEUE.alias("running_job")
    now = func.now() if postgres else bindparam("now", type_=Timestamp)
    lease_until = (
        func.now() + bindparam("lease", type_=Interval())
        if postgres
        else bindparam("lease_until", type_=Timestamp)
    )
    due = (
        select(QUEUE.c.id)
        .where(
            QUEUE.c.state == SQL_STATE[PENDING],
            QUEUE.c.run_at <= now,
            job_not_paused(QUEUE.c.direction),  # an operator's pause holds them back
            # NOT IN, not NOT EXISTS: PostgreSQL turns NOT EXISTS into an anti-join whose
            # plan follows the statistics, and a queue's are stale by nature (with an empty
            # queue's, it scanned every running job per pending one: 1.4 s per claim under a
            # backlog of 10,000). NOT IN is a hashed set of the few running entities, probed
            # per row, whatever the estimates. The columns are NOT NULL, so NOT IN's NULL
            # trap cannot apply.
            tuple_(QUEUE.c.entity_type, QUEUE.c.entity_key).not_in(
                select(running.c.entity_type, running.c.entity_key).where(
                    running.c.state == SQL_STATE[RUNNING]
                )
            ),
        )
        .order_by(QUEUE.c.priority, QUEUE.c.run_at, QUEUE.c.id)
        .limit(bindparam("limit", type_=Integer()))
    )
    claim = update(QUEUE).values(
        state=SQL_STATE[RUNNING],
        locked_by=bindparam("worker_id", type_=String()),
        lease_until=lease_until,
        attempts=QUEUE.c.attempts + 1,
        claim=NEXT_CLAIM,
        updated_at=now,
    )
    if postgres:
        # A CTE, so the planner can never lock or update more rows than the limit.
        picked = due.with_for_update(skip_locked=True, of=QUEUE).cte("picked")
        claim = claim.where(QUEUE.c.id == picked.c.id)
    else:
        # One statement under SQLite's single write lock: atomic by construction.
        claim = claim.where(QUEUE.c.id.in_(due.scalar_subquery()))
    return claim.returning(*QUEUE.c)


class QueueRepository:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        policy: RetryPolicy | None = None,
        ageing_seconds: float | None = DEFAULT_AGEING_SECONDS,
    ) -> None:
        self.engine = engine
        self.policy = policy or RetryPolicy()
        self.ageing_seconds = ageing_seconds
        self._postgres = engine.dialect.name == "postgresql"

    # -- enqueue (inside the caller's transaction) -------------------------------------------

    async def enqueue(
        self,
        connection: AsyncConnection,
        entity_type: str,
        key: str,
        *,
        priority: int = 5,
        source: JobSource | str,
        direction: JobDirection | str,
        payload: dict[str, Any] | None = None,
    ) -> Enqueued:
        """Queue work for one entity, or merge it into the entity's pending job."""
        result = await upsert_pending(
            connection,
            str(entity_type),
            [key],
            priority=priority,
            source=str(source),
            direction=str(direction),
            payload=payload,
        )
        job_id = result.job_ids[key]
        return Enqueued(job_id, created=result.created == 1)

    async def enqueue_many(
        self,
        connection: AsyncConnection,
        entity_type: str,
        keys: Iterable[str],
        *,
        priority: int = 5,
        source: JobSource | str,
        direction: JobDirection | str,
        payload: dict[str, Any] | None = None,
    ) -> BulkEnqueued:
        """`enqueue` for a backfill: one statement per chunk of keys (duplicates count once).
        The keys go in sorted, in every statement of every caller, so the row locks of two
        overlapping enqueues are taken in one order and cannot deadlock each other (an
        upsert locks rows in the order they arrive)."""
        unique = sorted(set(keys))
        total = BulkEnqueued(0, 0)
        for start in range(0, len(unique), ENQUEUE_CHUNK):
            chunk = unique[start : start + ENQUEUE_CHUNK]
            part = await upsert_pending(
                connection,
                str(entity_type),
                chunk,
                priority=priority,
                source=str(source),
                direction=str(direction),
                payload=payload,
            )
            total = BulkEnqueued(
                total.created + part.created,
                total.coalesced + part.coalesced,
                {**total.job_ids, **part.job_ids},
            )
        return total

    async def enqueue_each(
        self,
        connection: AsyncConnection,
        requests: Sequence[tuple[str, str, str]],
        *,
        priority: int = 5,
        source: JobSource | str,
    ) -> dict[tuple[str, str], int]:
        """Queue (entity_type, key, direction) requests of several types and directions in
        one statement (on PostgreSQL): the webhook intake's. Duplicates count once; they go
        in by type, then key, the lock order of `enqueue_many`. {(entity_type, key): job id}."""
        unique = sorted({(str(t), k): str(d) for t, k, d in requests}.items())
        return await upsert_pending_each(
            connection, [(t, k, d) for (t, k), d in unique], priority=priority, source=str(source)
        )

    # -- claim -------------------------------------------------------------------------------

    async def claim(self, worker_id: str, limit: int, lease_seconds: float) -> list[ClaimedJob]:
        """Lease up to `limit` due jobs, most urgent first, never two for one entity."""
        if limit < 1:
            return []
        return await self._retry_races(lambda: self._claim_once(worker_id, limit, lease_seconds))

    async def _claim_once(
        self, worker_id: str, limit: int, lease_seconds: float
    ) -> list[ClaimedJob]:
        params: dict[str, Any] = {"worker_id": worker_id, "limit": limit}
        if self._postgres:
            params["lease"] = timedelta(seconds=lease_seconds)
        else:
            params["now"] = utc_now()
            params["lease_until"] = params["now"] + timedelta(seconds=lease_seconds)
        rows: Sequence[Any]  # asyncpg records, or SQLAlchemy row mappings
        if self._postgres:
            # Claims take turns: side by side, each skipped the rows the others had locked,
            # and a backlog's tail was shared out among many partial batches (each a HubSpot
            # request). A claim holds the lock for its one statement. Straight through
            # asyncpg, BEGIN and the lock in one message: the worker claims several times a
            # second.
            claim = _claim_postgres()
            async with each_statement_committed(self.engine) as connection:
                rows = await fetch_under_lock(
                    connection, _CLAIM_LOCK, claim.sql, *claim.args(**params)
                )
        else:
            async with self.engine.begin() as connection:
                statement = _claim_statement(postgres=False)
                rows = (await connection.execute(statement, params)).mappings().all()
        # RETURNING has no order: hand the batch out in claim order.
        ordered = sorted(rows, key=lambda row: (row["priority"], row["run_at"], row["id"]))
        return [claimed_job(row) for row in ordered]

    async def claim_entity(
        self,
        entity_type: str,
        key: str,
        *,
        worker_id: str,
        lease_seconds: float,
        source: JobSource | str = JobSource.API,
        direction: JobDirection | str = JobDirection.TO_HUBSPOT,
        priority: int = 1,
        payload: dict[str, Any] | None = None,
    ) -> ClaimedJob:
        """Take one entity now (the immediate-sync path): its pending job becomes this
        worker's running job, or a new running job is made. Raises EntityBusyError while
        another worker runs the entity. Finish it with `complete` like any claimed job."""
        job = {
            "entity_type": str(entity_type),
            "entity_key": key,
            "direction": str(direction),
            "source": str(source),
            "priority": priority,
            "payload": payload,
        }
        try:
            return await self._claim_entity_once(job, worker_id, lease_seconds)
        except IntegrityError:
            # Another claim took the entity between our look and our write: the running-job
            # unique index refused the second holder.
            raise EntityBusyError(str(entity_type), key, None) from None

    async def _claim_entity_once(
        self, job: dict[str, Any], worker_id: str, lease_seconds: float
    ) -> ClaimedJob:
        async with self.engine.begin() as connection:
            dialect = connection.dialect
            of_entity = (
                QUEUE.c.entity_type == job["entity_type"],
                QUEUE.c.entity_key == job["entity_key"],
            )
            holder = await connection.scalar(
                select(QUEUE.c.id).where(*of_entity, QUEUE.c.state == SQL_STATE[RUNNING])
            )
            if holder is not None:
                raise EntityBusyError(job["entity_type"], job["entity_key"], holder)
            lease = {
                "state": SQL_STATE[RUNNING],
                "locked_by": worker_id,
                "lease_until": sql_now(dialect, lease_seconds),
                "updated_at": sql_now(dialect),
            }
            taken = await connection.execute(
                update(QUEUE)
                .where(*of_entity, QUEUE.c.state == SQL_STATE[PENDING])
                .values(
                    **lease,
                    attempts=QUEUE.c.attempts + 1,
                    claim=NEXT_CLAIM,
                    priority=least(dialect, QUEUE.c.priority, job["priority"]),
                )
                .returning(*QUEUE.c)
            )
            row = taken.mappings().first()
            if row is None:
                values = {
                    **job,
                    **lease,
                    "attempts": 1,
                    "claim": 1,
                    "run_at": sql_now(dialect),
                    "created_at": sql_now(dialect),
                }
                inserted = await connection.execute(
                    insert(QUEUE).values(values).returning(*QUEUE.c)
                )
                row = inserted.mappings().one()
        return claimed_job(row)

    # -- finish ------------------------------------------------------------------------------

    async def complete(
        self,
        worker_id: str,
        outcomes: Sequence[JobOutcome],
        *,
        claims: Mapping[int, int] | None = None,
    ) -> CompletionSummary:
        """Record what the handler decided, in one transaction. Outcomes for jobs that
        `worker_id` no longer holds (its lease expired and someone rescued them) are ignored:
        the job's current holder decides. With `claims` (job id -> the fencing token of the
        claim the outcome belongs to), an outcome is also ignored when its job was claimed
        again since, even under the same holder name."""
        if not outcomes:
            return CompletionSummary()
        every_done = all(outcome.status is OutcomeStatus.DONE for outcome in outcomes)
        if self._postgres and claims is not None and every_done:
            return await self._complete_all_done(worker_id, outcomes, claims)
        return await self._retry_races(lambda: self._complete_once(worker_id, outcomes, claims))

    async def _complete_all_done(
        self, worker_id: str, outcomes: Sequence[JobOutcome], claims: Mapping[int, int]
    ) -> CompletionSummary:
        """A worker's batch whose every job is done (the usual one), on PostgreSQL: one
        statement in its own transaction, where the general path takes four round trips
        (BEGIN, the rows locked, the update, COMMIT). The same guard (running, held by
        `worker_id` under the claim the outcome belongs to), the rows locked in id order."""
        ids = sorted({o.job_id for o in outcomes if o.job_id in claims})
        tokens = [claims[job_id] for job_id in ids]
        async with each_statement_committed(self.engine) as autocommit:
            rows = await _ALL_DONE_POSTGRES.fetch(
                autocommit, ids=ids, claims=tokens, worker=worker_id
            )
        if rows:
            now = as_utc(rows[0]["db_now"])
            observe_finished(
                [
                    FinishedJob(row["direction"], row["source"], as_utc(row["created_at"]), DONE)
                    for row in rows
                ],
                now,
            )
        asked = len({outcome.job_id for outcome in outcomes})
        return CompletionSummary(done=len(rows), ignored=asked - len(rows))

    async def _complete_once(
        self,
        worker_id: str,
        outcomes: Sequence[JobOutcome],
        claims: Mapping[int, int] | None,
    ) -> CompletionSummary:
        by_id = {outcome.job_id: outcome for outcome in outcomes}
        async with self.engine.begin() as connection:
            rows, now = await self._held(connection, worker_id, list(by_id))
            if claims is not None:  # the rows are locked: the token cannot change under us
                rows = [row for row in rows if (row["claim"] or 0) == claims.get(row["id"])]
            done: list[int] = []
            failed: list[dict[str, Any]] = []
            retry: list[PendingReturn] = []
            ended: dict[int, str] = {}  # job id -> how it ended, for the metrics
            for row in rows:
                outcome = by_id[row["id"]]
                error = _clip(outcome.error)
                if outcome.status is OutcomeStatus.DONE:
                    done.append(row["id"])
                    ended[row["id"]] = DONE
                    continue
                if outcome.status is OutcomeStatus.RETRY:
                    delay = self.policy.delay(row["attempts"], retry_after=outcome.retry_after)
                    retry_at = now + timedelta(seconds=delay)
                    if not self.policy.exhausted(as_utc(row["created_at"]), retry_at):
                        retry.append(
                            PendingReturn.of(row, retry_at, error, outcome.error_kind or "retry")
                        )
                        ended[row["id"]] = OutcomeStatus.RETRY.value
                        continue
                    error = _clip(
                        f"gave up after {row['attempts']} attempts over "
                        f"{_age(as_utc(row['created_at']), now)}: {error or 'no error given'}"
                    )
                failed.append(
                    {"b_id": row["id"], "b_error": error, "b_kind": outcome.error_kind or "failed"}
                )
                ended[row["id"]] = FAILED
            guard = _still_held(worker_id)
            if done and self._postgres:  # every batch: straight through asyncpg
                await _DONE_POSTGRES.run(connection, ids=done, worker=worker_id, at=now)
            elif done:
                await connection.execute(
                    _mark_done(any_of(connection, QUEUE.c.id, done), worker_id, now)
                )
            if failed:
                await connection.execute(
                    update(QUEUE)
                    .where(QUEUE.c.id == bindparam("b_id"), *guard)
                    .values(
                        state=SQL_STATE[FAILED],
                        last_error=bindparam("b_error"),
                        last_error_kind=bindparam("b_kind"),
                        **_finished(now),
                    ),
                    failed,
                )
            superseded = await return_to_pending(connection, now, retry, guard)
        # Committed: counted here, whoever ran the jobs (worker, sync-now, a resolution).
        observe_finished(
            [
                FinishedJob(row["direction"], row["source"], as_utc(row["created_at"]), how)
                for row in rows
                if (how := ended.get(row["id"])) is not None
            ],
            now,
        )
        return CompletionSummary(
            done=len(done),
            retried=len(retry) - superseded,
            failed=len(failed),
            superseded=superseded,
            ignored=len(by_id) - len(rows),
        )

    async def extend_lease(
        self, worker_id: str, job_ids: Sequence[int], lease_seconds: float
    ) -> set[int]:
        """Heartbeat: push the lease of these jobs forward; returns the ids still held."""
        if not job_ids:
            return set()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(QUEUE)
                .where(any_of(connection, QUEUE.c.id, job_ids), *_still_held(worker_id))
                .values(lease_until=sql_now(connection.dialect, lease_seconds))
                .returning(QUEUE.c.id)
            )
            return set(result.scalars())

    async def release(self, worker_id: str, job_ids: Sequence[int] | None = None) -> int:
        """Graceful shutdown: hand held jobs back to the queue, due now, the attempt unspent."""

        async def once() -> int:
            async with self.engine.begin() as connection:
                rows, now = await self._held(connection, worker_id, job_ids)
                items = [
                    PendingReturn.of(
                        row,
                        now,
                        row["last_error"],
                        row["last_error_kind"],
                        attempts=max(row["attempts"] - 1, 0),
                    )
                    for row in rows
                ]
                await return_to_pending(connection, now, items, _still_held(worker_id))
                return len(items)

        return await self._retry_races(once)

    async def rescue_expired(self, limit: int = 1000) -> int:
        """Return jobs whose lease ran out (their worker died or hung) to the queue; also
        age the pending jobs (the worker's periodic maintenance runs this)."""
        rescued = await self._retry_races(lambda: rescue_expired(self.engine, self.policy, limit))
        await self.age_pending()
        return rescued

    async def age_pending(self) -> int:
        """Lift long-waiting jobs' priority one level per `ageing_seconds` waited."""
        if self.ageing_seconds is None:
            return 0
        return await age_pending(self.engine, self.ageing_seconds)

    async def requeue_failed(self, job_ids: Sequence[int] | None = None) -> int:
        """Run failed jobs again (every one when `job_ids` is None), attempts reset; returns
        how many left the failed state (requeued, or merged into a pending job). At most
        REQUEUE_CHUNK jobs per transaction, however many are asked for."""
        total = 0
        if job_ids is None:
            while True:
                count = await self._retry_races(lambda: requeue_failed(self.engine, None))
                total += count
                if count < REQUEUE_CHUNK:
                    return total
        wanted = list(dict.fromkeys(job_ids))
        for start in range(0, len(wanted), REQUEUE_CHUNK):
            chunk = wanted[start : start + REQUEUE_CHUNK]
            total += await self._retry_races(partial(requeue_failed, self.engine, chunk))
        return total

    async def prune_done(
        self, older_than: timedelta, *, batch_size: int = 1000, max_batches: int = 100
    ) -> int:
        """Delete done jobs finished more than `older_than` ago, `batch_size` rows per
        transaction; pending, running and failed jobs are never touched."""
        return await prune_done(self.engine, older_than, batch_size, max_batches)

    async def counts(self) -> dict[str, int]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(QUEUE.c.state, func.count()).group_by(QUEUE.c.state)
            )
            found: dict[str, int] = {row[0]: row[1] for row in rows}
        return {state: found.get(state, 0) for state in STATES}

    async def get(self, job_id: int) -> JobRecord | None:
        async with self.engine.connect() as connection:
            row = (
                (await connection.execute(select(QUEUE).where(QUEUE.c.id == job_id)))
                .mappings()
                .first()
            )
        return JobRecord.from_row(row) if row is not None else None

    async def jobs_for(self, entity_type: str, key: str, limit: int = 10) -> list[JobRecord]:
        """The entity's latest jobs, newest first."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(QUEUE)
                .where(QUEUE.c.entity_type == str(entity_type), QUEUE.c.entity_key == key)
                .order_by(QUEUE.c.id.desc())
                .limit(limit)
            )
            return [JobRecord.from_row(row) for row in rows.mappings()]

    # -- internals ---------------------------------------------------------------------------

    async def _held(
        self, connection: AsyncConnection, worker_id: str, job_ids: Sequence[int] | None
    ) -> tuple[list[RowMapping], datetime]:
        """The running jobs `worker_id` holds (row-locked on PostgreSQL), and the db's now."""
        if self._postgres and job_ids is not None:  # every batch: straight through asyncpg
            found = await _HELD_JOBS_POSTGRES.run(connection, worker=worker_id, ids=list(job_ids))
            return found, (found[0]["db_now"] if found else await database_now(connection))
        ids = None if job_ids is None else any_of(connection, QUEUE.c.id, job_ids)
        query = _held_jobs(sql_now(connection.dialect), worker_id, ids, lock=self._postgres)
        rows = list((await connection.execute(query)).mappings())
        now = as_utc(rows[0]["db_now"]) if rows else await database_now(connection)
        return rows, now

    async def _retry_races(self, action: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, RACE_RETRIES + 1):
            try:
                return await action()
            except IntegrityError:
                # A concurrent enqueue or claim won a unique index between our read and our
                # write; the transaction rolled back whole, so trying again is safe.
                if attempt == RACE_RETRIES:
                    raise
                log.debug("queue race on a unique index, retrying (%d)", attempt)
        raise AssertionError("unreachable")


def _held_jobs(now: Any, worker: Any, ids: Any, *, lock: bool) -> Any:
    """The running jobs `worker` holds (of `ids`, a condition on the id; None: all), with the
    database's `now`; row-locked where `lock`."""
    query = select(*QUEUE.c, now.label("db_now")).where(*_still_held(worker))
    if ids is not None:
        query = query.where(ids)
    if lock:
        query = query.with_for_update(of=QUEUE)
    return query.order_by(QUEUE.c.id)


def _still_held(worker: Any) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Running and held by `worker`: the guard of every write that ends a job, so a batch
    whose jobs were rescued and claimed again records nothing."""
    return (QUEUE.c.state == SQL_STATE[RUNNING], QUEUE.c.locked_by == worker)


def _finished(at: Any) -> dict[str, Any]:
    """What every write that ends a job sets besides its state: when, and the lease let go."""
    return {"finished_at": at, "updated_at": at, "locked_by": None, "lease_until": None}


def _mark_done(ids: Any, worker: Any, at: Any) -> Any:
    """`ids` (a condition on the id) done, where `worker` still holds them running."""
    return (
        update(QUEUE)
        .where(ids, *_still_held(worker))
        .values(state=SQL_STATE[DONE], last_error=None, last_error_kind=None, **_finished(at))
    )


# The completion's two statements of every batch, compiled once for asyncpg.
_HELD_JOBS_POSTGRES = postgres_sql(
    _held_jobs(func.now(), bindparam("worker"), any_param(QUEUE.c.id, "ids"), lock=True)
)
_DONE_POSTGRES = postgres_sql(
    _mark_done(any_param(QUEUE.c.id, "ids"), bindparam("worker"), bindparam("at", type_=Timestamp))
)


def _all_done() -> PostgresStatement:
    """A batch all done, in one statement (`QueueRepository._complete_all_done`): `_mark_done`
    for the jobs still held by `worker` under the claim each was handed out with (`ids` and
    `claims`, two arrays in step), their rows locked in id order first (as `_held_jobs` locks
    them); what each was, for the metrics."""
    worker = bindparam("worker", type_=String())
    held = still_handed().where(QUEUE.c.locked_by == worker).with_for_update(of=QUEUE).cte("held")
    done = _mark_done(QUEUE.c.id == held.c.id, worker, func.now()).returning(
        QUEUE.c.id,
        QUEUE.c.direction,
        QUEUE.c.source,
        QUEUE.c.created_at,
        func.now().label("db_now"),
    )
    return postgres_sql(done)


_ALL_DONE_POSTGRES = _all_done()


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR_CHARS]


def _age(start: datetime, end: datetime) -> str:
    seconds = int((end - start).total_seconds())
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"
