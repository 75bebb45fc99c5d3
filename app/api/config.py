"""The field rules and the sync scope over HTTP: read them, replace them (validated,
audited), or preview a replacement (`?dry_run=true`) without saving it — from field memory,
or with `&refresh=true` after reading HubSpot's current values at the reconciliation's pace
(`&refresh_limit=` companies at most)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.api.deps import app_context, json_body, require_api_token
from app.api.errors import ApiError
from app.api.query import query_choice, query_int
from app.context import AppContext
from app.hubspot.errors import HubSpotError
from app.store.sync_config import config_history, load_rules
from app.store.sync_scope import scope_record
from app.sync.core.rules import InvalidRuleError, rule_to_dict, rules_from_dicts
from app.sync.core.scope import InvalidScopeError, scope_from_dicts
from app.sync.operator.actions import change_rules, change_scope
from app.sync.operator.preview import (
    REFRESH_DEFAULT,
    REFRESH_MAX,
    Refresh,
    preview_rules,
    preview_scope,
)
from app.sync.reconcile.reading import ShareReader
from app.warp.columns import TableMissingError


def dry_run(request: Request) -> bool:
    return query_choice(request, "dry_run", ("true", "false"), default="false") == "true"


def refresh_of(request: Request, preview: bool) -> Refresh | None:
    """`refresh=true` (with `dry_run=true` only) and its `refresh_limit`."""
    refresh = query_choice(request, "refresh", ("true", "false"), default="false") == "true"
    limit = query_int(request, "refresh_limit", default=None, low=1, high=REFRESH_MAX)
    if refresh and not preview:
        raise ApiError(
            422,
            "refresh: only a preview reads HubSpot first; add dry_run=true",
            extra={"field": "refresh"},
        )
    if limit is not None and not refresh:
        raise ApiError(
            422, "refresh_limit: applies only with refresh=true", extra={"field": "refresh_limit"}
        )
    if not refresh:
        return None
    return refresh_for(app_context(request), limit or REFRESH_DEFAULT)


def refresh_for(context: AppContext, limit: int) -> Refresh:
    """A preview's read of HubSpot: the reconciliation's reader, within its rate share."""
    reconciler = context.reconciler
    if reconciler is None:
        raise ApiError(503, "refresh: HubSpot is not connected in this process")
    share = context.settings.reconcile_rate_share
    return Refresh(ShareReader(reconciler.hubspot), limit, rate_share=share)


def hubspot_unavailable(exc: HubSpotError) -> ApiError:
    return ApiError(
        503, f"refresh: HubSpot could not be read ({exc}); nothing was saved, retry later"
    )


async def get_config(request: Request) -> JSONResponse:
    require_api_token(request)
    async with app_context(request).engine.connect() as connection:
        rules = await load_rules(connection)
        history = await config_history(connection, limit=10)
    return JSONResponse(
        {"rules": [rule_to_dict(rule) for rule in rules], "recent_changes": history}
    )


async def put_config(request: Request) -> JSONResponse:
    caller = require_api_token(request)
    body = await json_body(request, required=True)
    items: Any = body.get("rules") if isinstance(body, dict) else body
    if not isinstance(items, list) or not items:
        raise ApiError(
            422, 'expected {"rules": [ ... ]} with at least one rule', extra={"field": "rules"}
        )
    if not all(isinstance(item, dict) for item in items):
        raise ApiError(422, "every rule must be a JSON object", extra={"field": "rules"})
    context = app_context(request)
    preview = dry_run(request)
    refresh = refresh_of(request, preview)
    try:
        if preview:
            return JSONResponse(
                await preview_rules(
                    context.engine,
                    context.warp,
                    rules_from_dicts(items),
                    warp_engine=context.warp_engine,
                    customers_table=context.settings.effective_customers_table,
                    refresh=refresh,
                )
            )
        before, after = await change_rules(
            context.engine,
            rules_from_dicts(items),
            by=caller,
            warp_engine=context.warp_engine,
            customers_table=context.settings.effective_customers_table,
        )
    except TableMissingError as exc:
        raise ApiError(503, f"{exc}; check WARP_CUSTOMERS_TABLE") from None
    except InvalidRuleError as exc:
        raise ApiError(422, str(exc), extra={"field": exc.field}) from None
    except HubSpotError as exc:
        raise hubspot_unavailable(exc) from None
    return JSONResponse({"rules": after, "previous": before})


async def get_scope(request: Request) -> JSONResponse:
    require_api_token(request)
    async with app_context(request).engine.connect() as connection:
        return JSONResponse(await scope_record(connection))


async def put_scope(request: Request) -> JSONResponse:
    """Replace the sync scope: `{"conditions": [{"column", "op", "values"}, …]}` (an empty
    list syncs everyone). `?dry_run=true` answers who would enter and leave, saving nothing."""
    caller = require_api_token(request)
    body = await json_body(request, required=True)
    if not isinstance(body, dict) or "conditions" not in body:
        raise ApiError(
            422,
            'expected {"conditions": [{"column", "op", "values"}, ...]}',
            extra={"field": "conditions"},
        )
    context = app_context(request)
    preview = dry_run(request)
    refresh = refresh_of(request, preview)
    try:
        scope = scope_from_dicts(body["conditions"])
        table = context.settings.effective_customers_table
        if preview:
            return JSONResponse(
                await preview_scope(
                    context.engine,
                    context.warp,
                    scope,
                    warp_engine=context.warp_engine,
                    customers_table=table,
                    refresh=refresh,
                )
            )
        before = await change_scope(
            context.engine, scope, by=caller, warp_engine=context.warp_engine, customers_table=table
        )
    except TableMissingError as exc:
        raise ApiError(503, f"{exc}; check WARP_CUSTOMERS_TABLE") from None
    except InvalidScopeError as exc:
        raise ApiError(422, str(exc), extra={"field": exc.field}) from None
    except HubSpotError as exc:
        raise hubspot_unavailable(exc) from None
    return JSONResponse({"conditions": scope.to_json(), "previous": before.to_json()})


routes: list[BaseRoute] = [
    Route("/v1/sync/config", get_config, methods=["GET"]),
    Route("/v1/sync/config", put_config, methods=["PUT"]),
    Route("/v1/sync/scope", get_scope, methods=["GET"]),
    Route("/v1/sync/scope", put_scope, methods=["PUT"]),
]
