"""The sync engine: one batch of jobs in, one outcome per job out, for every source.

Per batch (up to 100 entities): read the customers from WARP in one query, read their companies
from HubSpot in one batch read only where a field HubSpot may own is involved, decide every
field (`app.sync.decision`), write HubSpot (batch update for linked companies, batch **upsert
on `warp_ban`** for new ones, so a retry after a crash finds the company instead of creating a
second), write WARP, and commit links, field state, conflicts and the log in one transaction.

The order makes a crash at any point safe: HubSpot first, then WARP, then hubsync's own
records. A job interrupted anywhere is retried, re-reads both sides, finds what was already
written equal on both and records it — never a duplicate, never a lost change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.hubspot.errors import HubSpotError, HubSpotNotFoundError, HubSpotPermanentError
from app.hubspot.models import BatchOutcome, BatchResult, HubSpotCompany, UpdateInput, UpsertInput
from app.store import sync_state
from app.store.sync_config import load_rules
from app.sync.decision import Action
from app.sync.jobs import ClaimedJob, EntityType, JobDirection, JobOutcome, OutcomeStatus
from app.sync.mapping import MappingError, hubspot_properties
from app.sync.pairs import LAST_MODIFIED, Pair
from app.sync.ports import HubSpotPort
from app.sync.rules import IDENTITY_HUBSPOT_PROPERTY, FieldRule
from app.warp.connector import WarpConnector, canonical_id

log = logging.getLogger("hubsync.sync")

AfterBatch = Callable[[AsyncConnection, Sequence[JobOutcome]], Any]


@dataclass
class _Batch:
    """The jobs of one batch and what has been decided about each so far."""

    outcomes: dict[int, JobOutcome]
    logs: list[dict[str, Any]]

    def finish(self, job: ClaimedJob, status: OutcomeStatus, **details: Any) -> None:
        self.outcomes[job.id] = JobOutcome(job_id=job.id, status=status, **details)

    def open(self, jobs: Sequence[ClaimedJob]) -> list[ClaimedJob]:
        return [job for job in jobs if job.id not in self.outcomes]


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
        started = time.perf_counter()
        batch = _Batch(outcomes={}, logs=[])
        async with self.engine.connect() as connection:
            rules = [rule for rule in await load_rules(connection) if rule.enabled]
        pairs: list[Pair] = []
        customer_jobs = [j for j in jobs if j.entity_type is EntityType.CUSTOMER]
        company_jobs = [j for j in jobs if j.entity_type is EntityType.COMPANY]
        if customer_jobs:
            pairs += await self._pairs_from_customers(customer_jobs, batch)
        if company_jobs:
            pairs += await self._pairs_from_companies(company_jobs, rules, batch)
        if pairs:
            await self._settle(pairs, rules, batch)
        outcomes = [batch.outcomes[job.id] for job in jobs]
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        for entry in batch.logs:
            entry.setdefault("duration_ms", elapsed_ms)
        async with self.engine.begin() as connection:
            await sync_state.write_log(connection, batch.logs)
            if self.after_batch is not None:
                await self.after_batch(connection, outcomes)
        return outcomes

    # -- building pairs ------------------------------------------------------------------

    async def _pairs_from_customers(self, jobs: list[ClaimedJob], batch: _Batch) -> list[Pair]:
        customers = await self.warp.fetch_customers([job.entity_key for job in jobs])
        ids = list(customers)
        async with self.engine.connect() as connection:
            links = await sync_state.links_by_customer(connection, ids)
            memory = await sync_state.field_memory(connection, ids)
        pairs = []
        for job in jobs:
            customer = customers.get(_canonical(job.entity_key))
            if customer is None:
                message = f"customer {job.entity_key} not found in WARP"
                batch.finish(job, OutcomeStatus.FAILED, error=message, error_kind="not_found")
                batch.logs.append(
                    _log(job, customer_id=job.entity_key, outcome="failed", error=message)
                )
                continue
            link = links.get(customer["id"])
            if link is not None and link.state == "deleted":
                reason = (
                    f"HubSpot company {link.hubspot_company_id} was deleted; not recreated "
                    "(restore it in HubSpot, or relink it by hand)"
                )
                batch.finish(
                    job, OutcomeStatus.DONE, result={"outcome": "skipped", "reason": reason}
                )
                batch.logs.append(
                    _log(
                        job,
                        customer_id=customer["id"],
                        company_id=link.hubspot_company_id,
                        outcome="skipped",
                        error=reason,
                    )
                )
                continue
            pairs.append(Pair(job, customer, link, memory.get(customer["id"], {})))
        return pairs

    async def _pairs_from_companies(
        self, jobs: list[ClaimedJob], rules: list[FieldRule], batch: _Batch
    ) -> list[Pair]:
        """Inbound work: read each company, find its customer by link or by `warp_ban`."""
        async with self.engine.connect() as connection:
            resolved = await sync_state.resolve_company_ids(
                connection, [j.entity_key for j in jobs]
            )
        read = await self._read_companies(
            [resolved[j.entity_key] for j in jobs], rules, id_property=None
        )
        if isinstance(read, HubSpotError):
            for job in jobs:
                self._fail_from_error(batch, job, read)
            return []
        companies: dict[str, HubSpotCompany] = {}
        async with self.engine.begin() as connection:
            for job in jobs:
                company_id = resolved[job.entity_key]
                outcome = read.get(company_id)
                if outcome is not None and outcome.company is not None:
                    companies[job.entity_key] = outcome.company
                    continue
                error = outcome.error if outcome else None
                if error is not None and not isinstance(error, HubSpotNotFoundError):
                    self._fail_from_error(batch, job, error)
                    continue
                await sync_state.set_link_state(connection, company_id, "deleted")
                reason = f"HubSpot company {company_id} no longer exists; link marked deleted"
                batch.finish(
                    job, OutcomeStatus.DONE, result={"outcome": "skipped", "reason": reason}
                )
                batch.logs.append(_log(job, company_id=company_id, outcome="skipped", error=reason))
        return await self._match_customers(jobs, companies, rules, batch)

    async def _match_customers(
        self,
        jobs: list[ClaimedJob],
        companies: dict[str, HubSpotCompany],
        rules: list[FieldRule],
        batch: _Batch,
    ) -> list[Pair]:
        """Each company's customer: by link first, else by `warp_ban`; none = unmatched."""
        async with self.engine.connect() as connection:
            links = await sync_state.links_by_company(
                connection, [c.id for c in companies.values()]
            )
        bans = [c.properties.get(IDENTITY_HUBSPOT_PROPERTY) or "" for c in companies.values()]
        by_ban = await self.warp.fetch_customers_by_ban([b for b in bans if b])
        linked_ids = [link.warp_customer_id for link in links.values() if link.warp_customer_id]
        by_id = await self.warp.fetch_customers(linked_ids)
        pairs = []
        matched: list[tuple[ClaimedJob, HubSpotCompany, dict[str, Any], Any]] = []
        async with self.engine.begin() as connection:
            for job in jobs:
                company = companies.get(job.entity_key)
                if company is None:
                    continue
                link = links.get(company.id)
                customer = None
                if link is not None and link.warp_customer_id:
                    customer = by_id.get(link.warp_customer_id)
                ban = company.properties.get(IDENTITY_HUBSPOT_PROPERTY) or ""
                if customer is None and ban:
                    customer = by_ban.get(ban)
                if customer is None:
                    await sync_state.save_link(
                        connection,
                        customer_id=None,
                        company_id=company.id,
                        ban=ban or None,
                        state="unmatched",
                    )
                    reason = f"HubSpot company {company.id} has no WARP customer" + (
                        f" with ban {ban}" if ban else " (no warp_ban)"
                    )
                    batch.finish(
                        job, OutcomeStatus.DONE, result={"outcome": "unmatched", "reason": reason}
                    )
                    batch.logs.append(
                        _log(job, company_id=company.id, outcome="skipped", error=reason)
                    )
                    continue
                matched.append((job, company, customer, link))
            memory = await sync_state.field_memory(connection, [c["id"] for _, _, c, _ in matched])
            existing = await sync_state.links_by_customer(
                connection, [c["id"] for _, _, c, _ in matched]
            )
        for job, company, customer, link in matched:
            pair = Pair(
                job, customer, link or existing.get(customer["id"]), memory.get(customer["id"], {})
            )
            pair.read_hubspot(rules, company)
            pairs.append(pair)
        return pairs

    # -- deciding and writing ------------------------------------------------------------

    async def _settle(self, pairs: list[Pair], rules: list[FieldRule], batch: _Batch) -> None:
        live: list[Pair] = []
        for pair in pairs:
            try:
                pair.read_warp(rules)
            except MappingError as exc:
                self._fail(batch, pair, f"WARP value refused: {exc}", "validation")
                continue
            live.append(pair)
        to_read = [p for p in live if not p.company_read and self._must_read(p, rules)]
        if to_read:
            await self._read_for(to_read, rules, batch)
        live = [p for p in live if p.job.id not in batch.outcomes]
        for pair in live:
            if pair.decision is None or pair.company_read:  # unread pairs decided already
                pair.decide(rules)
        written = await self._write_hubspot(live, rules, batch)
        await self._write_warp(written, rules, batch)
        done = [p for p in written if p.job.id not in batch.outcomes]
        await self._record(done, rules, batch)

    def _must_read(self, pair: Pair, rules: list[FieldRule]) -> bool:
        """Read HubSpot first unless WARP wins every field that changed whatever HubSpot holds."""
        if pair.job.direction is not JobDirection.TO_HUBSPOT or pair.link is None:
            return True
        return pair.decide(rules).needs_hubspot_read

    async def _read_for(self, pairs: list[Pair], rules: list[FieldRule], batch: _Batch) -> None:
        linked = [p for p in pairs if p.link is not None and p.link.hubspot_company_id]
        unlinked = [p for p in pairs if p not in linked]
        for group, id_property in ((linked, None), (unlinked, IDENTITY_HUBSPOT_PROPERTY)):
            if not group:
                continue
            keys = [
                p.link.hubspot_company_id if id_property is None and p.link else p.ban
                for p in group
            ]
            read = await self._read_companies([k or "" for k in keys], rules, id_property)
            for pair, key in zip(group, keys, strict=True):
                if isinstance(read, HubSpotError):
                    self._fail(batch, pair, str(read), _kind(read), error=read)
                    continue
                outcome = read.get(key or "")
                if outcome is not None and outcome.company is not None:
                    pair.read_hubspot(rules, outcome.company)
                elif outcome is None or isinstance(outcome.error, HubSpotNotFoundError):
                    if id_property is None:
                        await self._company_gone(pair, batch)
                    else:
                        pair.read_hubspot(rules, None)  # not in HubSpot yet: create it
                elif outcome.error is not None:
                    self._fail(
                        batch, pair, str(outcome.error), _kind(outcome.error), error=outcome.error
                    )

    async def _company_gone(self, pair: Pair, batch: _Batch) -> None:
        company_id = pair.link.hubspot_company_id if pair.link else None
        async with self.engine.begin() as connection:
            if company_id:
                await sync_state.set_link_state(connection, company_id, "deleted")
        reason = (
            f"HubSpot company {company_id} no longer exists; link marked deleted, not recreated"
        )
        batch.finish(pair.job, OutcomeStatus.DONE, result={"outcome": "skipped", "reason": reason})
        batch.logs.append(
            _log(
                pair.job,
                customer_id=pair.customer_id,
                company_id=company_id,
                outcome="skipped",
                error=reason,
            )
        )

    async def _read_companies(
        self, ids: list[str], rules: list[FieldRule], id_property: str | None
    ) -> Any:
        properties = [rule.hubspot_property for rule in rules] + [LAST_MODIFIED]
        try:
            return await self.hubspot.batch_read_companies(ids, properties, id_property)
        except HubSpotError as exc:
            return exc

    async def _write_hubspot(
        self, pairs: list[Pair], rules: list[FieldRule], batch: _Batch
    ) -> list[Pair]:
        """Send only changed properties; returns the pairs whose HubSpot side is settled."""
        updates: list[tuple[Pair, UpdateInput]] = []
        upserts: list[tuple[Pair, UpsertInput]] = []
        settled: list[Pair] = []
        for pair in pairs:
            assert pair.decision is not None  # noqa: S101
            properties = hubspot_properties(rules, pair.decision.hubspot_writes)
            company_id = pair.company_id
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
        self, pairs: list[Pair], call: Awaitable[BatchResult], batch: _Batch
    ) -> list[Pair]:
        try:
            result = await call
        except HubSpotError as exc:
            for pair in pairs:
                self._fail(batch, pair, str(exc), _kind(exc), error=exc)
            return []
        return [
            pair
            for pair, outcome in zip(pairs, result.outcomes, strict=True)
            if await self._written(pair, outcome, batch)
        ]

    async def _written(self, pair: Pair, outcome: BatchOutcome, batch: _Batch) -> bool:
        if isinstance(outcome.error, HubSpotNotFoundError) and pair.link is not None:
            await self._company_gone(pair, batch)  # deleted in HubSpot since we last looked
            return False
        if outcome.error is not None:
            self._fail(batch, pair, str(outcome.error), _kind(outcome.error), error=outcome.error)
            return False
        if outcome.company is not None and pair.company is None:
            pair.company = outcome.company
        return True

    async def _write_warp(self, pairs: list[Pair], rules: list[FieldRule], batch: _Batch) -> None:
        for pair in pairs:
            updates = pair.warp_updates(rules)
            company_id = pair.company_id
            recorded = (pair.customer.get("external_ids") or {}).get("hubspot_company_id")
            new_id = company_id if company_id and recorded != company_id else None
            if not updates and new_id is None:
                continue
            try:
                await self.warp.write_fields(pair.customer_id, updates, hubspot_company_id=new_id)
            except Exception as exc:  # noqa: BLE001 -- any WARP failure: retry the job later
                self._fail(
                    batch,
                    pair,
                    f"WARP write failed: {type(exc).__name__}: {exc}",
                    "warp",
                    retry=True,
                )

    async def _record(self, pairs: list[Pair], rules: list[FieldRule], batch: _Batch) -> None:
        """Links, field state and conflicts for the whole batch in one transaction, with a
        statement per kind of change rather than per entity: a batch in steady state costs
        a handful of statements."""
        synced_at = datetime.now(UTC)
        async with self.engine.begin() as connection:
            for pair in pairs:
                if _link_changed(pair):
                    await sync_state.save_link(
                        connection,
                        customer_id=pair.customer_id,
                        company_id=pair.company_id,
                        ban=pair.ban,
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
            await sync_state.mark_synced(connection, [p.customer_id for p in pairs])
        for pair in pairs:
            self._finish(pair, batch)

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

    def _finish(self, pair: Pair, batch: _Batch) -> None:
        decision = pair.decision
        assert decision is not None  # noqa: S101
        changes = pair.changes()
        if pair.company is not None and pair.company.new:
            outcome = "created"
        elif decision.conflicts:
            outcome = "conflict"
        else:
            outcome = "updated" if changes else "unchanged"
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
        batch.finish(pair.job, OutcomeStatus.DONE, result=result)
        batch.logs.append(
            _log(
                pair.job,
                customer_id=pair.customer_id,
                company_id=pair.company_id,
                outcome=outcome,
                changes=changes,
            )
        )

    # -- failures ------------------------------------------------------------------------

    def _fail(
        self,
        batch: _Batch,
        pair: Pair,
        message: str,
        kind: str,
        *,
        error: HubSpotError | None = None,
        retry: bool = False,
    ) -> None:
        permanent = isinstance(error, HubSpotPermanentError) or (error is None and not retry)
        status = OutcomeStatus.FAILED if permanent else OutcomeStatus.RETRY
        retry_after = error.retry_after if error is not None else None
        batch.finish(pair.job, status, error=message, error_kind=kind, retry_after=retry_after)
        batch.logs.append(
            _log(
                pair.job,
                customer_id=pair.customer_id,
                company_id=pair.company_id,
                outcome="failed",
                error=message,
            )
        )

    def _fail_from_error(self, batch: _Batch, job: ClaimedJob, error: HubSpotError) -> None:
        permanent = isinstance(error, HubSpotPermanentError)
        batch.finish(
            job,
            OutcomeStatus.FAILED if permanent else OutcomeStatus.RETRY,
            error=str(error),
            error_kind=_kind(error),
            retry_after=error.retry_after,
        )
        batch.logs.append(_log(job, company_id=job.entity_key, outcome="failed", error=str(error)))


def _link_changed(pair: Pair) -> bool:
    link = pair.link
    return link is None or (link.hubspot_company_id, link.warp_ban, link.state) != (
        pair.company_id,
        pair.ban,
        "active",
    )


def _kind(error: HubSpotError) -> str:
    return type(error).__name__.removeprefix("HubSpot").removesuffix("Error").lower() or "hubspot"


def _canonical(key: str) -> str:
    try:
        return canonical_id(key)
    except ValueError:
        return key


def _log(
    job: ClaimedJob,
    *,
    customer_id: str | None = None,
    company_id: str | None = None,
    outcome: str,
    changes: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "job_id": job.id if job.id > 0 else None,
        "warp_customer_id": customer_id,
        "hubspot_company_id": company_id,
        "source": job.source.value,
        "direction": job.direction.value,
        "outcome": outcome,
        "changes": changes or None,
        "error": error,
    }
