"""The console's customer page: each field's WARP value now, HubSpot's value as hubsync last
saw it (and how old that sighting is), in sync or differing; "read HubSpot now", which reads
the company live through the HubSpot client (so within the rate limiter) and shows where
HubSpot differs from what field memory knew; and the outcome of a "sync now"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.admin.access import Session
from app.admin.rendering import company_url, render, signed_in
from app.api.deps import app_context
from app.context import AppContext, require
from app.hubspot.errors import HubSpotError
from app.store import sync_state
from app.store.admin_audit import record_action
from app.store.console import customer_history, job_log, last_changes
from app.store.sync_config import load_rules
from app.sync.core.mapping import MappingError, normalize, normalize_hubspot
from app.sync.core.mapping import get_path as value_at
from app.sync.core.records import FieldMemory
from app.sync.core.rules import FieldRule
from app.warp.connector import canonical_id

HISTORY_ROWS = 50


@dataclass(frozen=True)
class LiveRead:
    """HubSpot's values read just now, by warp field (`None`: blank), or why it failed."""

    at: datetime
    values: dict[str, str | None]
    error: str | None = None


def age(moment: datetime | None, now: datetime) -> str | None:
    """ "4 min ago": how old a sighting is, in the largest whole unit."""
    if moment is None:
        return None
    seconds = max(0, int((now - moment.astimezone(UTC)).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _warp_now(rule: FieldRule, record: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """The record's canonical value for the rule, or the reason it cannot be read."""
    if record is None:
        return None, None
    try:
        return normalize(rule, value_at(record, rule.warp_field)), None
    except MappingError as exc:
        return None, str(exc)


def field_rows(
    rules: list[FieldRule],
    record: dict[str, Any] | None,
    memory: dict[str, FieldMemory],
    *,
    conflicts: list[Any],
    changed: dict[str, dict[str, Any]],
    live: LiveRead | None,
    read_at: datetime | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """A row per rule. `read_at`: when a sync last read the whole company (the link's)."""
    rows = []
    for rule in rules:
        seen = memory.get(rule.warp_field)
        warp, unreadable = _warp_now(rule, record)
        hubspot = seen.hubspot_value if seen else None
        state = "in sync" if seen is not None and warp == hubspot else "differs"
        if seen is None:
            state = "never synced"
        live_value = live.values.get(rule.warp_field) if live and not live.error else None
        live_differs = bool(
            live is not None and not live.error and rule.enabled and live_value != hubspot
        )
        if live_differs:
            state = "differs in HubSpot now"
        # The value was last seen by the newest of: a sync (of this field), a webhook that
        # changed it, a read of the whole company.
        sightings = (
            [t for t in (seen.synced_at, seen.hubspot_changed_at, read_at) if t is not None]
            if seen
            else []
        )
        rows.append(
            {
                "rule": rule,
                "memory": seen,
                "warp_now": warp,
                "unreadable": unreadable,
                "state": "disabled" if not rule.enabled else state,
                "seen_at": max(sightings, key=lambda t: t.astimezone(UTC)) if sightings else None,
                "seen_age": age(max(sightings, key=lambda t: t.astimezone(UTC)), now)
                if sightings
                else None,
                "live": live_value,
                "live_differs": live_differs,
                "last": changed.get(rule.warp_field),
                "conflict": next((c for c in conflicts if c.field == rule.warp_field), None),
            }
        )
    return rows


async def read_live(context: AppContext, company_id: str, rules: list[FieldRule]) -> LiveRead:
    """One GET of the company through hubsync's client: it takes its grant from the shared
    rate limiter like every other call."""
    now = datetime.now(UTC)
    client = require(context.hubspot, "HubSpot client")
    enabled = [rule for rule in rules if rule.enabled]
    try:
        company = await client.get_company(company_id, [r.hubspot_property for r in enabled])
    except HubSpotError as exc:
        return LiveRead(now, {}, error=str(exc))
    values: dict[str, str | None] = {}
    for rule in enabled:
        try:
            values[rule.warp_field] = normalize_hubspot(
                rule, company.properties.get(rule.hubspot_property)
            )
        except MappingError as exc:
            values[rule.warp_field] = f"(unreadable: {exc})"
    return LiveRead(now, values)


async def _page(
    request: Request, session: Session, key: str, live: LiveRead | None = None
) -> Response:
    context = app_context(request)
    raw_before = request.query_params.get("before", "")
    before = int(raw_before) if raw_before.isdigit() and len(raw_before) < 19 else None
    records = await context.warp.fetch_customers([key])
    async with context.engine.connect() as connection:
        link = (await sync_state.links_by_customer(connection, [key])).get(key)
        memory = (await sync_state.field_memory(connection, [key])).get(key, {})
        history = await customer_history(connection, key, before_id=before, limit=HISTORY_ROWS)
        conflicts = await sync_state.open_conflicts_of(connection, key)
        rules = list(await load_rules(connection))
    if key not in records and link is None:
        return await render(request, session, "missing.html", 404, what=f"customer {key}")
    queue = require(context.queue, "queue")
    jobs = await queue.jobs_for("customer", key, limit=10)
    outcome = None
    raw_job = request.query_params.get("job", "")
    if raw_job.isdigit() and len(raw_job) < 19:
        job = await queue.get(int(raw_job))
        if job is not None and job.entity_key == key:
            async with context.engine.connect() as connection:
                lines = await job_log(connection, job.id, job.entity_type, job.entity_key)
            outcome = {"job": job, "last": lines[-1] if lines else None}
    now = datetime.now(UTC)
    return await render(
        request,
        session,
        "customer.html",
        key=key,
        record=records.get(key),
        link=link,
        fields=field_rows(
            rules,
            records.get(key),
            memory,
            conflicts=conflicts,
            changed=last_changes(history),
            live=live,
            read_at=link.hubspot_read_at if link else None,
            now=now,
        ),
        read_age=age(link.hubspot_read_at if link else None, now),
        written_age=age(link.hubspot_written_at if link else None, now),
        live=live,
        outcome=outcome,
        history=history,
        next_before=history[-1]["id"] if len(history) >= HISTORY_ROWS else None,
        jobs=jobs,
        hubspot_url=company_url(context, link.hubspot_company_id if link else None),
    )


def _key(request: Request) -> str | None:
    try:
        return canonical_id(request.path_params["customer_id"])
    except ValueError:
        return None


@signed_in
async def customer(request: Request, session: Session) -> Response:
    key = _key(request)
    if key is None:
        raw = request.path_params["customer_id"]
        return await render(request, session, "missing.html", 404, what=f"customer {raw}")
    return await _page(request, session, key)


@signed_in
async def read_hubspot_now(request: Request, session: Session) -> Response:
    """POST (CSRF-checked): read the linked company live and show the page with it."""
    context = app_context(request)
    key = _key(request)
    if key is None:
        raw = request.path_params["customer_id"]
        return await render(request, session, "missing.html", 404, what=f"customer {raw}")
    async with context.engine.connect() as connection:
        link = (await sync_state.links_by_customer(connection, [key])).get(key)
        rules = list(await load_rules(connection))
    if link is None or not link.hubspot_company_id:
        return await render(
            request, session, "error.html", 409, message="Not linked to a HubSpot company yet."
        )
    live = await read_live(context, link.hubspot_company_id, rules)
    async with context.engine.begin() as connection:
        await record_action(
            connection,
            actor=session.who,
            action="customer.read_hubspot",
            target=f"customer:{key}",
            detail={"company": link.hubspot_company_id, "error": live.error},
        )
    return await _page(request, session, key, live)
