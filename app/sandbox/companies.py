"""The CRM companies API: single-object, list, batch, search and merge routes.

The same handlers answer under `/crm/v3/objects/companies` and the date-based
`/crm/objects/2026-03/companies`. Batches process each input on its own: a failed input becomes
an entry of `errors` and the answer a 207, the others still apply.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.sandbox.clock import now_iso
from app.sandbox.errors import ApiError, JsonDict, bad_request, not_found
from app.sandbox.request_io import (
    batch_envelope,
    batch_inputs,
    bool_param,
    csv_param,
    input_properties,
    json_body,
    refuse_duplicate_ids,
    sandbox_of,
)
from app.sandbox.search import run_search
from app.sandbox.store import ALL

MAX_PAGE = 100
_NOT_FOUND_MESSAGE = (
    "Could not get some COMPANY objects, they may be deleted or not exist. "
    "Check that ids are valid."
)


def _trace(item: Any) -> dict[str, list[str]]:
    trace = item.get("objectWriteTraceId") if isinstance(item, dict) else None
    return {"objectWriteTraceId": [str(trace)]} if trace is not None else {}


def _with_trace(body: JsonDict, item: Any) -> JsonDict:
    if isinstance(item, dict) and item.get("objectWriteTraceId") is not None:
        body["objectWriteTraceId"] = str(item["objectWriteTraceId"])
    return body


def _not_found_error(ids: list[str]) -> JsonDict:
    return ApiError(
        404, "OBJECT_NOT_FOUND", _NOT_FOUND_MESSAGE, context={"ids": ids}
    ).standard_error()


def _batch_answer(
    requested_at: str, results: list[JsonDict], errors: list[JsonDict], ok_status: int
) -> JSONResponse:
    status = 207 if errors else ok_status
    return JSONResponse(batch_envelope(requested_at, results, errors), status_code=status)


# -- single objects --------------------------------------------------------------------


async def create_company(request: Request) -> Response:
    sandbox = sandbox_of(request)
    properties = input_properties(await json_body(request))
    company = sandbox.companies.create(properties, sandbox.api_source)
    return JSONResponse(company.to_json(ALL), status_code=201)


async def get_company(request: Request) -> Response:
    sandbox = sandbox_of(request)
    ref = request.path_params["company_id"]
    company = sandbox.companies.find(
        ref,
        id_property=request.query_params.get("idProperty"),
        archived=bool_param(request, "archived"),
    )
    if company is None:
        raise not_found(ref)
    body = company.to_json(
        csv_param(request, "properties"),
        csv_param(request, "propertiesWithHistory"),
        null_for_unset=sandbox.config.unset_properties_as_null,
    )
    return JSONResponse(body)


async def update_company(request: Request) -> Response:
    sandbox = sandbox_of(request)
    properties = input_properties(await json_body(request))
    company = sandbox.companies.update(
        request.path_params["company_id"],
        properties,
        sandbox.api_source,
        id_property=request.query_params.get("idProperty"),
    )
    return JSONResponse(company.to_json(ALL))


async def archive_company(request: Request) -> Response:
    sandbox = sandbox_of(request)
    sandbox.companies.archive(request.path_params["company_id"], sandbox.api_source)
    return Response(status_code=204)


async def list_companies(request: Request) -> Response:
    sandbox = sandbox_of(request)
    try:
        limit = min(max(int(request.query_params.get("limit", "10")), 1), MAX_PAGE)
    except ValueError:
        raise bad_request("limit must be an integer") from None
    companies, next_after = sandbox.companies.page(
        request.query_params.get("after"), limit, archived=bool_param(request, "archived")
    )
    properties = csv_param(request, "properties")
    history = csv_param(request, "propertiesWithHistory")
    body: JsonDict = {
        "results": [
            c.to_json(properties, history, null_for_unset=sandbox.config.unset_properties_as_null)
            for c in companies
        ]
    }
    if next_after is not None:
        body["paging"] = {"next": {"after": next_after, "link": f"?after={next_after}"}}
    return JSONResponse(body)


# -- batches ---------------------------------------------------------------------------


async def batch_create(request: Request) -> Response:
    requested_at = now_iso()
    sandbox = sandbox_of(request)
    results: list[JsonDict] = []
    errors: list[JsonDict] = []
    for item in batch_inputs(await json_body(request)):
        try:
            company = sandbox.companies.create(input_properties(item), sandbox.api_source)
        except ApiError as exc:
            errors.append(exc.standard_error(_trace(item)))
        else:
            results.append(_with_trace(company.to_json(ALL), item))
    return _batch_answer(requested_at, results, errors, 201)


async def batch_read(request: Request) -> Response:
    requested_at = now_iso()
    sandbox = sandbox_of(request)
    body = await json_body(request)
    inputs = batch_inputs(body)
    id_property = body.get("idProperty") or request.query_params.get("idProperty")
    archived = bool_param(request, "archived") or bool(body.get("archived", False))
    properties = body.get("properties") or None
    history = body.get("propertiesWithHistory") or None
    results: list[JsonDict] = []
    seen: set[str] = set()
    missing: list[str] = []
    for item in inputs:
        ref = str(item.get("id")) if isinstance(item, dict) else ""
        company = sandbox.companies.find(ref, id_property=id_property, archived=archived)
        if company is None:
            missing.append(ref)
        elif company.id not in seen:
            seen.add(company.id)
            results.append(
                company.to_json(
                    properties, history, null_for_unset=sandbox.config.unset_properties_as_null
                )
            )
    errors = [_not_found_error(missing)] if missing else []
    return _batch_answer(requested_at, results, errors, 200)


async def batch_update(request: Request) -> Response:
    requested_at = now_iso()
    sandbox = sandbox_of(request)
    inputs = batch_inputs(await json_body(request))
    refuse_duplicate_ids(inputs)
    results: list[JsonDict] = []
    errors: list[JsonDict] = []
    missing: list[str] = []
    for item in inputs:
        try:
            properties = input_properties(item)
            company = sandbox.companies.update(
                str(item.get("id")), properties, sandbox.api_source,
                id_property=item.get("idProperty"),
            )  # fmt: skip
        except ApiError as exc:
            if exc.category == "OBJECT_NOT_FOUND" and exc.status == 404:
                missing.append(str(item.get("id")))
            else:
                errors.append(exc.standard_error(_trace(item)))
        else:
            results.append(_with_trace(company.to_json(ALL), item))
    if missing:
        errors.insert(0, _not_found_error(missing))
    return _batch_answer(requested_at, results, errors, 200)


async def batch_upsert(request: Request) -> Response:
    requested_at = now_iso()
    sandbox = sandbox_of(request)
    inputs = batch_inputs(await json_body(request))
    refuse_duplicate_ids(inputs)
    default_id_property = request.query_params.get("idProperty")
    results: list[JsonDict] = []
    errors: list[JsonDict] = []
    for item in inputs:
        try:
            properties = input_properties(item)
            if item.get("id") in (None, ""):
                raise bad_request("Each upsert input needs an `id`")
            company, new = sandbox.companies.upsert(
                str(item["id"]),
                item.get("idProperty") or default_id_property,
                properties,
                sandbox.api_source,
            )
        except ApiError as exc:
            errors.append(exc.standard_error({"ids": [str(item.get("id"))], **_trace(item)}))
        else:
            results.append(_with_trace({**company.to_json(ALL), "new": new}, item))
    return _batch_answer(requested_at, results, errors, 200)


async def batch_archive(request: Request) -> Response:
    sandbox = sandbox_of(request)
    for item in batch_inputs(await json_body(request)):
        if isinstance(item, dict) and item.get("id") is not None:
            sandbox.companies.archive(str(item["id"]), sandbox.api_source)
    return Response(status_code=204)


# -- search and merge ------------------------------------------------------------------


async def search_companies(request: Request) -> Response:
    sandbox = sandbox_of(request)
    body = run_search(
        sandbox.companies,
        await json_body(request),
        cap=sandbox.config.search_result_cap,
        null_for_unset=sandbox.config.unset_properties_as_null,
        index_delay_ms=round(sandbox.config.search_index_delay_seconds * 1000),
    )
    return JSONResponse(body)


async def merge_companies(request: Request) -> Response:
    sandbox = sandbox_of(request)
    body = await json_body(request)
    if (
        not isinstance(body, dict)
        or not body.get("primaryObjectId")
        or not body.get("objectIdToMerge")
    ):
        raise bad_request("primaryObjectId and objectIdToMerge are required")
    company = sandbox.companies.merge(
        str(body["primaryObjectId"]), str(body["objectIdToMerge"]), sandbox.api_source
    )
    return JSONResponse(company.to_json(ALL))


def company_routes(prefix: str) -> list[Route]:
    return [
        Route(prefix, list_companies, methods=["GET"]),
        Route(prefix, create_company, methods=["POST"]),
        Route(f"{prefix}/batch/create", batch_create, methods=["POST"]),
        Route(f"{prefix}/batch/read", batch_read, methods=["POST"]),
        Route(f"{prefix}/batch/update", batch_update, methods=["POST"]),
        Route(f"{prefix}/batch/upsert", batch_upsert, methods=["POST"]),
        Route(f"{prefix}/batch/archive", batch_archive, methods=["POST"]),
        Route(f"{prefix}/search", search_companies, methods=["POST"]),
        Route(f"{prefix}/merge", merge_companies, methods=["POST"]),
        Route(f"{prefix}/{{company_id}}", get_company, methods=["GET"]),
        Route(f"{prefix}/{{company_id}}", update_company, methods=["PATCH"]),
        Route(f"{prefix}/{{company_id}}", archive_company, methods=["DELETE"]),
    ]
