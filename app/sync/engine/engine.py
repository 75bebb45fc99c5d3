"""The sync engine: one batch of jobs in, one outcome per job out, for every source.

Per batch (up to 100 entities): read the customers from WARP in one query, read their companies
from HubSpot in one batch read only where a field HubSpot may own is involved, decide every
field (`app.sync.core.decision`), write HubSpot (batch update for linked companies, batch **upsert
on `warp_ban`** for new ones, so a retry after a crash finds the company instead of creating a
second), write WARP, and commit links, field state, conflicts and the log at once: on PostgreSQL
in one statement that fences the claims first (`write_if_all_held`), else in one transaction.

The order makes a crash at any point safe: HubSpot first, then WARP, then hubsync's own
records. A job interrupted anywhere is retried, re-reads both sides, finds what was already
written equal on both and records it — never a duplicate, never a lost change.

One bad record never holds back the rest: jobs that resolve to one customer are settled as
one pair (`one_pair_per_customer`); a HubSpot value hubsync cannot read fails only its job
(unless WARP owns the field, which is simply overwritten); a customer whose company another
customer holds is held, not written (`hold_taken`); HubSpot's rejections are per input (the
client splits a batch rejected whole); WARP rows are written one by one and compare-and-set
(`app.sync.engine.warp_writes`): a refused row fails alone, a row WARP changed meanwhile is decided
again; a CRM edit a previous write overwrote is recovered from its webhook
(`app.sync.engine.crm_edits`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.hubspot.errors import HubSpotError, HubSpotNotFoundError
from app.hubspot.models import BatchOutcome, BatchResult, UpdateInput, UpsertInput
from app.sql import StatementNotGathered, gathered_writes
from app.store import sync_state
from app.store.column_changes import column_change_times
from app.store.db import each_statement_committed, is_postgres
from app.store.queue.fence import (
    ClaimsMovedError,
    held_claims,
    held_claims_and_pauses,
    write_if_all_held,
)
from app.store.sync_config import load_rules
from app.store.sync_scope import exited, forget_exits, load_scope, note_exits
from app.sync.core.decision import Action
from app.sync.core.identity import ban_problem, normalize_ban, shown
from app.sync.core.jobs import ClaimedJob, EntityType, JobDirection, JobOutcome, OutcomeStatus
from app.sync.core.mapping import MappingError, hubspot_properties
from app.sync.core.rules import IDENTITY_HUBSPOT_PROPERTY, FieldRule
from app.sync.core.scope import Scope
from app.sync.engine.batch import SyncBatch, error_kind
from app.sync.engine.change_times import settle_latest_wins
from app.sync.engine.crm_edits import recover_overwritten_edits
from app.sync.engine.holds import hold_paused, is_held, queue_held
from app.sync.engine.pairing import (
    hold_taken,
    one_pair_per_customer,
    pairs_from_companies,
    pairs_from_customers,
)
from app.sync.engine.pairs import LAST_MODIFIED, Pair, asked_at, parse_time
from app.sync.engine.ports import HubSpotPort
from app.sync.engine.warp_writes import reread_pairs, write_warp
from app.warp.connector import WarpConnector

log = logging.getLogger("hubsync.sync")

# A customer WARP changed during its sync is decided again (compare-and-set on WARP's values);
# past this many rounds in one batch its job goes back to the queue.
DECIDE_ROUNDS = 3
OUT_OF_SCOPE = "out_of_scope"  # a job's outcome when the sync scope leaves its customer out
AfterBatch = Callable[[AsyncConnection, Sequence[JobOutcome]], Any]


class SyncEngine:
    """Implements `JobHandler`: `await engine(jobs)` syncs them and says what became of each."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        warp: WarpConnector,
        hubspot: HubSpotPort,
        after_batch: AfterBatch | None = None,
    ) -> None:
        self.engine = engine
        self.warp = warp
        self.hubspot = hubspot
        self.after_batch = after_batch

    async def __call__(self, jobs: Sequence[ClaimedJob]) -> list[JobOutcome]:
        batch = SyncBatch(started=time.perf_counter())
        async with self.engine.connect() as connection:
            rules = [rule for rule in await load_rules(connection) if rule.enabled]
            scope = await load_scope(connection)
        pairs: list[Pair] = []
        customer_jobs = [j for j in jobs if j.entity_type is EntityType.CUSTOMER]
        company_jobs = [j for j in jobs if j.entity_type is EntityType.COMPANY]
        if customer_jobs:
            pairs += await pairs_from_customers(
                customer_jobs, batch, db=self.engine, warp=self.warp
            )
        if company_jobs:
            pairs += await pairs_from_companies(
                company_jobs,
                rules,
                batch,
                db=self.engine,
                warp=self.warp,
                read=lambda ids, id_property: self._read_companies(ids, rules, id_property),
            )
        pairs = await self._in_scope(pairs, scope, batch)
        pairs, followers = one_pair_per_customer(pairs)
        done = await self._settle(pairs, rules, batch) if pairs else []
        # What the sync settled, and the log of every job, in one statement where it can be.
        if is_postgres(self.engine) and _plain(done, batch):
            mark = batch.mark()
            try:
                async with each_statement_committed(self.engine) as connection:
                    async with gathered_writes(connection) as writes:
                        outcomes = await self._recorded(connection, done, followers, jobs, batch)
                    await write_if_all_held(connection, [pair.job for pair in done], writes)
            except (StatementNotGathered, ClaimsMovedError) as reason:
                log.debug("a batch recorded in a transaction: %s", reason)
                batch.rewind(mark)
            else:
                return outcomes
        # Else in one transaction, fenced at its start.
        async with self.engine.begin() as connection:
            done = await self._fenced(done, batch, connection)
            return await self._recorded(connection, done, followers, jobs, batch)

    async def _recorded(
        self,
        connection: AsyncConnection,
        done: list[Pair],
        followers: list[tuple[ClaimedJob, ClaimedJob]],
        jobs: Sequence[ClaimedJob],
        batch: SyncBatch,
    ) -> list[JobOutcome]:
        """The batch's records (`_record`), its log and `after_batch`'s, written on
        `connection`; what became of each job."""
        await self._record(connection, done, batch)
        for follower, lead in followers:
            batch.share(follower, lead)
        outcomes = [batch.outcomes[job.id] for job in jobs]
        elapsed_ms = int((time.perf_counter() - batch.started) * 1000)
        for entry in batch.logs:
            entry.setdefault("duration_ms", elapsed_ms)
        await sync_state.write_log(connection, batch.logs)
        if self.after_batch is not None:
            await self.after_batch(connection, outcomes)
        return outcomes

    async def _in_scope(self, pairs: list[Pair], scope: Scope, batch: SyncBatch) -> list[Pair]:
        """The pairs whose customer the sync scope admits. The others are done with the
        reason and nothing written on either side (their company is left as it is); they
        are remembered, and a customer that comes back reads HubSpot before it is decided,
        so what changed in the CRM meanwhile is merged from the base like any edit."""
        kept: list[Pair] = []
        left: list[str] = []
        for pair in pairs:
            reason = scope.refusal(pair.customer)
            if reason is None:
                kept.append(pair)
                continue
            left.append(pair.customer_id)
            batch.skip(
                pair.job,
                reason,
                customer_id=pair.customer_id,
                company_id=pair.company_id,
                outcome=OUT_OF_SCOPE,
            )
        async with self.engine.begin() as connection:
            await note_exits(connection, left)
            returning = await exited(connection, [p.customer_id for p in kept])
        for pair in kept:
            pair.returning = pair.customer_id in returning
        return kept

    # -- deciding and writing ------------------------------------------------------------

    async def _settle(
        self, pairs: list[Pair], rules: list[FieldRule], batch: SyncBatch, *, round_: int = 1
    ) -> list[Pair]:
        """Decide and write both sides; returns the pairs written, to be recorded (`_record`,
        with the batch's log). A crash before that leaves their jobs to run again, which
        finds both sides equal and records them."""
        live: list[Pair] = []
        # A read and one write (the sightings), each committed as it runs.
        async with each_statement_committed(self.engine) as connection:
            captured = await column_change_times(connection, [p.customer_id for p in pairs])
            for pair in pairs:
                try:
                    pair.read_warp(rules, captured.get(pair.customer_id))
                except MappingError as exc:
                    self._fail(batch, pair, f"WARP value refused: {exc}", "validation")
                    continue
                if pair.ban and (problem := ban_problem(pair.ban)) is not None:
                    message = f"the customer's ban {shown(pair.ban)!r} cannot be used: {problem}"
                    self._fail(batch, pair, message, "validation")
                    continue
                live.append(pair)
            await self._note_warp_sightings(connection, live, rules)
        to_read = [p for p in live if not p.company_read and self._must_read(p, rules)]
        if to_read:
            await self._read_for(to_read, rules, batch)
        live = [p for p in live if not batch.settled(p.job)]
        for pair in live:
            if (reason := pair.unreadable_reason(rules)) is not None:
                self._fail(batch, pair, reason, "validation")
        live = await hold_taken(
            [p for p in live if not batch.settled(p.job)], batch, db=self.engine
        )
        await recover_overwritten_edits(live, rules, db=self.engine)
        for pair in live:
            pair.decide(rules)
        # LATEST_WINS changed on both sides: decide on per-field times, not row-level ones.
        await settle_latest_wins(live, rules, db=self.engine, hubspot=self.hubspot)
        # Right before each write, in one transaction: an operator's pause holds the writes to
        # its side, and a holder whose claim is no longer current writes nothing (fencing,
        # app/store/queue/fence.py).
        live = await self._cleared(live, batch, hubspot=True)
        written = await self._write_hubspot(live, rules, batch)
        # A write by a stale id HubSpot applied to a merged survivor: keep the link where it is.
        written = await hold_taken(written, batch, db=self.engine)
        if any(pair.writes_warp() for pair in written):  # else nothing to pause or fence yet
            written = await self._cleared(written, batch, hubspot=False)
        changed = await write_warp(self.warp, written, rules, batch)
        done = [p for p in written if not batch.settled(p.job) and p not in changed]
        if changed and round_ < DECIDE_ROUNDS:
            again = await reread_pairs(changed, batch, db=self.engine, warp=self.warp)
            done += await self._settle(again, rules, batch, round_=round_ + 1)
        elif changed:  # WARP keeps changing under this customer: later, from the queue
            for pair in changed:
                message = "WARP changed this customer during every sync attempt; retrying"
                self._fail(batch, pair, message, "warp", retry=True)
        return done

    @staticmethod
    async def _note_warp_sightings(
        connection: AsyncConnection, pairs: list[Pair], rules: list[FieldRule]
    ) -> None:
        """WARP's new values, remembered before anything can fail: a retry then knows when
        each was first seen, rather than taking a later unrelated edit's `updated_at` as the
        field's change time (LATEST_WINS; see app/sync/engine/change_times.py)."""
        rows = [row for pair in pairs for row in pair.new_warp_sightings(rules)]
        if rows:
            await sync_state.note_warp_values(connection, rows)

    async def _cleared(self, pairs: list[Pair], batch: SyncBatch, *, hubspot: bool) -> list[Pair]:
        """The pairs still held under their claim, with the writes to a paused side held
        (`hubspot=False`: WARP's only, after HubSpot was written)."""
        if not pairs:
            return pairs
        # One read: the fence's share lock lasts its statement (the write it guards is
        # HubSpot's or WARP's, outside hubsync's database; the records' statement fences
        # again, and keeps its lock until they commit).
        async with each_statement_committed(self.engine) as connection:
            held_ids, paused = await held_claims_and_pauses(connection, [p.job for p in pairs])
        held = self._refuse_unheld(pairs, held_ids, batch)
        hold_paused(held, paused, hubspot=hubspot)
        return held

    def _must_read(self, pair: Pair, rules: list[FieldRule]) -> bool:
        """Read HubSpot first unless WARP wins every field that changed whatever HubSpot holds."""
        link = pair.link
        if pair.job.direction is not JobDirection.TO_HUBSPOT or link is None:
            return True
        if pair.returning:  # back in scope: CRM edits made meanwhile are to be merged
            return True
        if not link.hubspot_company_id:  # split off by an operator: find its company first
            return True
        if link.warp_customer_id is None:  # a company waiting for its customer: adopt it
            return True
        return pair.needs_hubspot_read(rules)

    async def _read_for(self, pairs: list[Pair], rules: list[FieldRule], batch: SyncBatch) -> None:
        linked = [p for p in pairs if p.link is not None and p.link.hubspot_company_id]
        unlinked = [p for p in pairs if p not in linked]
        for group, id_property in ((linked, None), (unlinked, IDENTITY_HUBSPOT_PROPERTY)):
            if not group:
                continue
            keys = [
                p.link.hubspot_company_id if id_property is None and p.link else p.ban
                for p in group
            ]
            seen_at = asked_at()  # a 404 in this answer is "gone as of" this moment
            read = await self._read_companies([k or "" for k in keys], rules, id_property)
            read_at = datetime.now(UTC)
            for pair, key in zip(group, keys, strict=True):
                if isinstance(read, HubSpotError):
                    self._fail(batch, pair, str(read), error_kind(read), error=read)
                    continue
                outcome = read.get(key or "")
                if outcome is not None and outcome.company is not None:
                    pair.read_hubspot(rules, outcome.company)
                    pair.read_at = read_at
                elif outcome is None or isinstance(outcome.error, HubSpotNotFoundError):
                    if id_property is None:
                        await self._company_gone(pair, batch, seen_at)
                    else:
                        pair.read_hubspot(rules, None)  # not in HubSpot yet: create it
                elif outcome.error is not None:
                    error = outcome.error
                    self._fail(batch, pair, str(error), error_kind(error), error=error)

    async def _company_gone(self, pair: Pair, batch: SyncBatch, seen_at: datetime) -> None:
        """HubSpot answered 404 for the linked company (asked at `seen_at`): mark the link
        deleted — unless a restore that happened after `seen_at` was applied meanwhile."""
        company_id = pair.link.hubspot_company_id if pair.link else None
        marked = False
        if company_id:
            async with self.engine.begin() as connection:
                marked = await sync_state.set_link_state(
                    connection, company_id, "deleted", at=seen_at
                )
        message = (
            f"HubSpot company {company_id} no longer exists; link marked deleted, not recreated"
            if marked
            else f"HubSpot company {company_id} answered 404, but a restore newer than that "
            "answer was applied (or it has no link); the link is left as it is"
        )
        batch.skip(pair.job, message, customer_id=pair.customer_id, company_id=company_id)

    async def _read_companies(
        self, ids: list[str], rules: list[FieldRule], id_property: str | None
    ) -> BatchResult | HubSpotError:
        properties = [rule.hubspot_property for rule in rules] + [LAST_MODIFIED]
        try:
            return await self.hubspot.batch_read_companies(ids, properties, id_property)
        except HubSpotError as exc:
            return exc

    async def _write_hubspot(
        self, pairs: list[Pair], rules: list[FieldRule], batch: SyncBatch
    ) -> list[Pair]:
        """Send only changed properties; returns the pairs whose HubSpot side is settled."""
        updates: list[tuple[Pair, UpdateInput]] = []
        upserts: list[tuple[Pair, UpsertInput]] = []
        settled: list[Pair] = []
        targets: set[tuple[bool, str]] = set()
        for pair in pairs:
            assert pair.decision is not None  # noqa: S101
            properties = hubspot_properties(rules, pair.decision.hubspot_writes)
            properties.update(_identity_correction(pair, rules))
            company_id = pair.company_id
            if company_id is None and pair.held_create:  # outbound paused: not created yet
                settled.append(pair)
                continue
            target = (company_id is None, company_id or pair.ban)
            if target in targets:  # HubSpot refuses a batch naming one record twice
                message = "another customer of this batch writes the same HubSpot company"
                self._fail(batch, pair, message, "conflict", retry=True)
                continue
            targets.add(target)
            if company_id is None:
                upserts.append((pair, UpsertInput(id_value=pair.ban, properties=properties)))
            elif properties:
                updates.append((pair, UpdateInput(id=company_id, properties=properties)))
            else:
                settled.append(pair)
        if updates:
            call = self.hubspot.batch_update_companies([item for _, item in updates])
            settled += await self._sent([pair for pair, _ in updates], call, batch)
        if upserts:
            call = self.hubspot.batch_upsert_companies([item for _, item in upserts])
            settled += await self._sent([pair for pair, _ in upserts], call, batch)
        return settled

    async def _sent(
        self, pairs: list[Pair], call: Awaitable[BatchResult], batch: SyncBatch
    ) -> list[Pair]:
        seen_at = asked_at()
        try:
            result = await call
        except HubSpotError as exc:
            for pair in pairs:
                self._fail(batch, pair, str(exc), error_kind(exc), error=exc)
            return []
        return [
            pair
            for pair, outcome in zip(pairs, result.outcomes, strict=True)
            if await self._written(pair, outcome, batch, seen_at)
        ]

    async def _written(
        self, pair: Pair, outcome: BatchOutcome, batch: SyncBatch, seen_at: datetime
    ) -> bool:
        if isinstance(outcome.error, HubSpotNotFoundError) and pair.link is not None:
            await self._company_gone(pair, batch, seen_at)  # deleted since we last looked
            return False
        if outcome.error is not None:
            error = outcome.error
            self._fail(batch, pair, str(error), error_kind(error), error=error)
            return False
        if outcome.company is not None:
            pair.written_at = parse_time(outcome.company.updated_at)
            if pair.company is None:
                pair.company = outcome.company
        return True

    async def _record(
        self, connection: AsyncConnection, pairs: list[Pair], batch: SyncBatch
    ) -> None:
        """Links, field state and conflicts for the whole batch, fenced by the caller (the
        claims checked where the sync is recorded, their rows locked until it commits: a stale
        holder's records are refused), with a statement per kind of change rather than per
        entity: a batch in steady state costs a handful of statements, gathered into one."""
        if not pairs:
            return
        synced_at = datetime.now(UTC)
        await sync_state.save_active_links(
            connection,
            [
                (pair.customer_id, pair.company_id, pair.ban)
                for pair in pairs
                if pair.company_id is not None and _link_changed(pair)
            ],
        )
        await sync_state.save_field_states(
            connection, [row for pair in pairs for row in pair.field_state_rows(synced_at)]
        )
        conflicted = [pair for pair in pairs if pair.decision and pair.decision.conflicts]
        for pair in conflicted:
            await self._record_conflicts(connection, pair)
        await sync_state.resolve_all_conflicts(
            connection, [p.customer_id for p in pairs if p not in conflicted], "SYNC"
        )
        # A customer with writes held by a pause is not in sync until they are made.
        await sync_state.note_synced(
            connection, [(p.customer_id, not is_held(p), p.read_at, p.written_at) for p in pairs]
        )
        waiting = await queue_held(connection, pairs)
        await forget_exits(connection, [p.customer_id for p in pairs if p.returning])
        for pair in pairs:
            self._finish(pair, batch, waiting.get(pair.customer_id))

    async def _record_conflicts(self, connection: AsyncConnection, pair: Pair) -> None:
        decision = pair.decision
        assert decision is not None  # noqa: S101
        for conflict in decision.conflicts:
            hubspot_value = conflict.hubspot_value
            await sync_state.open_conflict(
                connection,
                {
                    "warp_customer_id": pair.customer_id,
                    "hubspot_company_id": pair.company_id,
                    "field": conflict.field,
                    "warp_value": conflict.warp_value,
                    "hubspot_value": hubspot_value if isinstance(hubspot_value, str) else None,
                    "base_value": conflict.base_value,
                    "reason": conflict.reason,
                },
            )
        settled = [d.field for d in decision.fields if d.action is not Action.CONFLICT]
        await sync_state.close_conflicts(connection, pair.customer_id, settled, "SYNC")

    def _finish(self, pair: Pair, batch: SyncBatch, waiting_job: int | None) -> None:
        decision = pair.decision
        assert decision is not None  # noqa: S101
        changes = pair.changes()
        held = pair.held()
        if pair.company is not None and pair.company.new:
            outcome = "created"
        elif decision.conflicts:
            outcome = "conflict"
        elif changes:
            outcome = "updated"
        else:
            outcome = "paused" if held else "unchanged"
        result = {
            "outcome": outcome,
            "customer_id": pair.customer_id,
            "hubspot_company_id": pair.company_id,
            "hubspot_written": {
                c["property"]: c["new"] for c in changes if c["target"] == "hubspot"
            },
            "warp_written": {c["field"]: c["new"] for c in changes if c["target"] == "warp"},
            "conflicts": [
                {
                    "field": c.field,
                    "warp_value": c.warp_value,
                    "hubspot_value": c.hubspot_value if isinstance(c.hubspot_value, str) else None,
                    "reason": c.reason,
                }
                for c in decision.conflicts
            ],
        }
        if held is not None:  # what a pause held back, and the job that waits for the resume
            result["paused"] = {**held, "job_id": waiting_job}
        batch.done(
            pair.job,
            result,
            customer_id=pair.customer_id,
            company_id=pair.company_id,
            changes=changes,
        )

    async def _fenced(
        self, pairs: list[Pair], batch: SyncBatch, connection: AsyncConnection
    ) -> list[Pair]:
        """The pairs whose job this holder still holds under its claim, their rows locked for
        the rest of `connection`'s transaction; the others are settled as a lost lease (the
        job's current holder syncs the customer)."""
        if not pairs:
            return pairs
        held = await held_claims(connection, [pair.job for pair in pairs])
        return self._refuse_unheld(pairs, held, batch)

    def _refuse_unheld(self, pairs: list[Pair], held: set[int], batch: SyncBatch) -> list[Pair]:
        """The pairs whose job is in `held`; the others settled as a lost lease."""
        for pair in pairs:
            if pair.job.id not in held:
                message = "the lease on this job was lost (it was claimed again); nothing written"
                self._fail(batch, pair, message, "lease_lost", retry=True)
        return [pair for pair in pairs if pair.job.id in held]

    # -- failures ------------------------------------------------------------------------

    @staticmethod
    def _fail(
        batch: SyncBatch,
        pair: Pair,
        message: str,
        kind: str,
        *,
        error: HubSpotError | None = None,
        retry: bool = False,
    ) -> None:
        batch.fail(
            pair.job,
            message,
            kind,
            customer_id=pair.customer_id,
            company_id=pair.company_id,
            error=error,
            retry=retry,
        )


def _plain(done: list[Pair], batch: SyncBatch) -> bool:
    """Whether the batch's records are the steady state's, a write per table that needs no
    answer (gathered into one statement): no link to save, no conflict to open, no write held
    by a pause, no customer back in scope, no job failed. Otherwise the statements the records
    need are run one by one in a transaction (a statement that would not gather is refused
    before it is sent, so a batch this misjudges is recorded that way too)."""
    return not any(
        _link_changed(pair)
        or pair.returning
        or is_held(pair)
        or (pair.decision is not None and pair.decision.conflicts)
        for pair in done
    ) and all(outcome.status is not OutcomeStatus.FAILED for outcome in batch.outcomes.values())


def _identity_correction(pair: Pair, rules: Sequence[FieldRule]) -> dict[str, str]:
    """`warp_ban` written back as WARP holds it when the company's differs only by what
    `normalize_ban` removes (`"ZT-100000001 "`): the decision sees them equal, but HubSpot's
    unique-value lookups are exact, so the next upsert would miss the company. Only when
    WARP owns the field (the identity rule flows WARP -> HubSpot)."""
    owned = any(
        rule.hubspot_property == IDENTITY_HUBSPOT_PROPERTY and rule.direction.writes_hubspot
        for rule in rules
    )
    if not owned or not pair.ban or pair.company is None:
        return {}
    held = pair.company.properties.get(IDENTITY_HUBSPOT_PROPERTY)
    if held == pair.ban or normalize_ban(held) != pair.ban:
        return {}  # equal, or a real difference: the decision's to settle
    return {IDENTITY_HUBSPOT_PROPERTY: pair.ban}


def _link_changed(pair: Pair) -> bool:
    link = pair.link
    return link is None or (link.hubspot_company_id, link.warp_ban, link.state) != (
        pair.company_id,
        pair.ban,
        "active",
    )
