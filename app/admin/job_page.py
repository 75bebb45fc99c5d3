"""The console's job page: a job's attempts, each error split into HubSpot's message and its
correlation id (as `HubSpotError.__str__` wrote them into the queue and the sync log), the
fields it wrote, and a timeline from queued to finished."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.admin.access import Session
from app.admin.rendering import render, signed_in
from app.admin.who import who_of
from app.api.deps import app_context
from app.context import require
from app.store.console import job_log

# "400 VALIDATION_ERROR: Property values were not valid (correlation id 1a2b…)"
_ERROR = re.compile(
    r"^(?:(?P<status>\d{3})(?: (?P<category>[A-Z_]+))?: )?(?P<message>.*?)"
    r"(?: \(correlation id (?P<correlation>[^)]+)\))?$",
    re.S,
)


@dataclass(frozen=True)
class ErrorText:
    status: str | None
    category: str | None
    message: str
    correlation_id: str | None


def read_error(text: str) -> ErrorText:
    """The parts of an error as the queue stores it; a text in another shape is all message."""
    match = _ERROR.match(text.strip())
    if match is None:  # pragma: no cover -- the pattern matches any text
        return ErrorText(None, None, text, None)
    return ErrorText(match["status"], match["category"], match["message"], match["correlation"])


def timeline(job: Any, attempts: list[dict[str, Any]]) -> list[tuple[datetime, str]]:
    """What happened to the job, in order: queued, each attempt's outcome, what comes next."""
    events: list[tuple[datetime, str]] = [(job.created_at, f"queued by {job.source}")]
    for number, attempt in enumerate(attempts, 1):
        line = f"attempt {number}: {attempt['outcome']}"
        if attempt["changes"]:
            line += f", wrote {len(attempt['changes'])} field(s)"
        events.append((attempt["at"], line))
    if job.state == "pending" and job.attempts:
        events.append((job.run_at, "next attempt due"))
    elif job.state == "pending":
        events.append((job.run_at, "due"))
    if job.finished_at is not None:
        events.append((job.finished_at, f"finished: {job.state}"))
    return sorted(events, key=lambda event: event[0])


@signed_in
async def job(request: Request, session: Session) -> Response:
    context = app_context(request)
    raw = request.path_params["job_id"]
    if not raw.isdigit() or len(raw) > 18:
        return await render(request, session, "missing.html", 404, what=f"job {raw}")
    record = await require(context.queue, "queue").get(int(raw))
    if record is None:
        return await render(request, session, "missing.html", 404, what=f"job {raw}")
    async with context.engine.connect() as connection:
        attempts = await job_log(connection, record.id, record.entity_type, record.entity_key)
    for attempt in attempts:
        attempt["error_parts"] = read_error(attempt["error"]) if attempt["error"] else None
    is_customer = record.entity_type == "customer"
    who = await who_of(
        context,
        [record.entity_key] if is_customer else [],
        [] if is_customer else [record.entity_key],
    )
    return await render(
        request,
        session,
        "job.html",
        job=record,
        who=who.get(record.entity_key),
        attempts=attempts,
        last_error=read_error(record.last_error) if record.last_error else None,
        written=[c for a in attempts for c in a["changes"]],
        timeline=timeline(record, attempts),
    )
