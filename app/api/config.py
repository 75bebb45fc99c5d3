"""The field rules over HTTP: read them, replace them (validated, audited)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.api.deps import app_context, json_body, require_api_token
from app.api.errors import ApiError
from app.store.sync_config import config_history, load_rules
from app.sync.core.rules import InvalidRuleError, rule_to_dict, rules_from_dicts
from app.sync.operator.actions import change_rules
from app.warp.columns import TableMissingError


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
    try:
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
    return JSONResponse({"rules": after, "previous": before})


routes: list[BaseRoute] = [
    Route("/v1/sync/config", get_config, methods=["GET"]),
    Route("/v1/sync/config", put_config, methods=["PUT"]),
]
