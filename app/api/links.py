"""An operator's answer to a held customer: relink it to a HubSpot company, or split it off.

A customer is held (link state `merged`) when its company was merged into one another
customer keeps; nothing is written for it until someone decides. `POST
/v1/sync/customers/{id}/relink` is that decision — `{"hubspot_company_id": "…"}` links it to
that company, `{"action": "split"}` gives it a company of its own (its next sync creates one,
by upsert on its `warp_ban`) — and queues its sync. It works on any customer, held or not.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.api.deps import app_context, json_body, require_api_token
from app.api.errors import ApiError
from app.api.idempotency import Answer, answer_idempotently
from app.api.paths import CUSTOMER_ID
from app.api.sync_jobs import idempotency_store, queue_of
from app.hubspot.errors import HubSpotError, HubSpotNotFoundError
from app.store import sync_state
from app.sync.core.identity import usable_ban
from app.sync.core.jobs import EntityType, JobDirection, JobSource
from app.sync.schedule.runtime import wake_worker
from app.warp.connector import canonical_id

ROUTE = "/v1/sync/customers/{customer_id}/relink"
_SHAPE = 'expected {"hubspot_company_id": "<id>"} or {"action": "split"}'


def _target(body: Any) -> str | None:
    """The company to link to, or None to split; 422 naming what is wrong otherwise."""
    if not isinstance(body, dict) or set(body) not in ({"hubspot_company_id"}, {"action"}):
        raise ApiError(422, _SHAPE, extra={"field": "body"})
    if "action" in body:
        if body["action"] != "split":
            raise ApiError(
                422, f"unknown action {body['action']!r}; {_SHAPE}", extra={"field": "action"}
            )
        return None
    company_id = body["hubspot_company_id"]
    if isinstance(company_id, int) and not isinstance(company_id, bool):
        company_id = str(company_id)
    if not isinstance(company_id, str) or not company_id.isdigit() or len(company_id) > 64:
        raise ApiError(
            422,
            "hubspot_company_id must be a HubSpot id (digits)",
            extra={"field": "hubspot_company_id"},
        )
    return company_id


async def relink_customer(request: Request) -> Response:
    """POST /v1/sync/customers/{customer_id}/relink — 202 with the new link and the queued job;
    404 unknown customer or company, 409 the company is another customer's, 422 a bad body."""
    caller = require_api_token(request)
    context = app_context(request)
    body = await request.body()
    target = _target(await json_body(request, required=True))
    raw = request.path_params["customer_id"]
    try:
        key = canonical_id(raw)
    except ValueError:
        raise ApiError(404, f"customer {raw} does not exist in WARP") from None

    async def produce(answer: Answer) -> tuple[int, dict[str, Any]]:
        customers = await context.warp.fetch_customers([key])
        if key not in customers:
            raise ApiError(404, f"customer {key} does not exist in WARP")
        company_id = await _existing_company(context.hubspot, target)
        async with context.engine.begin() as connection:
            try:
                link = await sync_state.relink_customer(
                    connection, key, company_id, usable_ban(customers[key].get("ban"))
                )
            except sync_state.CompanyTakenError as exc:
                raise ApiError(409, str(exc), code="company_taken") from None
            job_id, _ = await queue_of(context).enqueue(
                connection,
                EntityType.CUSTOMER,
                key,
                priority=1,
                source=JobSource.OPERATOR,
                direction=JobDirection.BOTH,
            )
            payload = {
                "customer_id": key,
                "link": {
                    "hubspot_company_id": link.hubspot_company_id,
                    "warp_ban": link.warp_ban,
                    "state": link.state,
                },
                "job_id": job_id,
            }
            await answer.record(connection, 202, payload)
        wake_worker(context)
        return 202, payload

    return await answer_idempotently(
        request, idempotency_store(context), caller=caller, route=ROUTE, body=body, produce=produce
    )


async def _existing_company(hubspot: Any, company_id: str | None) -> str | None:
    """The id the company answers to now (a merged-away id resolves to the survivor); 404 when
    HubSpot has no such company. Without a HubSpot client in this process, taken as given."""
    if company_id is None or hubspot is None:
        return company_id
    try:
        company = await hubspot.get_company(company_id, ["warp_ban"])
    except HubSpotNotFoundError:
        raise ApiError(404, f"HubSpot company {company_id} does not exist") from None
    except HubSpotError as exc:
        raise ApiError(
            503, f"HubSpot could not be asked about company {company_id}: {exc}"
        ) from None
    return str(company.id)


routes: list[BaseRoute] = [
    Route(f"/v1/sync/customers/{CUSTOMER_ID}/relink", relink_customer, methods=["POST"])
]
