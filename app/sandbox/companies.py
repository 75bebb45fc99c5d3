"""The CRM companies API: single-object, list, batch, search and merge routes.

The same handlers answer under `/crm/v3/objects/companies` and the date-based
`/crm/objects/2026-03/companies`. As HubSpot does, a batch write with an invalid property value
in any input is refused whole (400 VALIDATION_ERROR, nothing written); after that check each
input is processed on its own: a missing record or a taken unique value becomes an entry of
`errors` and the answer a 207, the others still apply.

The list API caps `limit` at 100 without complaint, as HubSpot does, but refuses more than 50
with `propertiesWithHistory`; batch read refuses more than 50 inputs with history likewise.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.sandbox.clock import now_iso
from app.sandbox.company_inputs import (
    batch_inputs,
    create_input,
    id_input,
    input_properties,
    properties_to_update,
    write_input,
)
from app.sandbox.errors import ApiError, JsonDict, bad_request, not_found
from app.sandbox.fields import (
    bool_param,
    csv_param,
    int_param,
    object_body,
    object_id,
    optional_bool,
    optional_string,
    string_list,
)
from app.sandbox.request_io import batch_envelope, json_body, refuse_duplicate_ids, sandbox_of
from app.sandbox.search import run_search
from app.sandbox.store import ALL

MAX_PAGE = 100
MAX_WITH_HISTORY = 50  # list page size and batch read inputs when history is asked for
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
    properties = input_properties(create_input(await json_body(request)))
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
        sandbox.properties.known(csv_param(request, "properties")),
        csv_param(request, "propertiesWithHistory"),
        null_for_unset=sandbox.config.unset_properties_as_null,
    )
    return JSONResponse(body)


async def update_company(request: Request) -> Response:
    sandbox = sandbox_of(request)
    properties = properties_to_update(await json_body(request))
    company = sandbox.companies.update(
        request.path_params["company_id"],
        properties,
        sandbox.api_source,
        id_property=sandbox.companies.update_key(request.query_params.get("idProperty")),
    )
    return JSONResponse(company.to_json(ALL))


async def archive_company(request: Request) -> Response:
    sandbox = sandbox_of(request)
    sandbox.companies.archive(request.path_params["company_id"], sandbox.api_source)
    return Response(status_code=204)


async def list_companies(request: Request) -> Response:
    sandbox = sandbox_of(request)
    asked = int_param(request, "limit", 10)
    properties = sandbox.properties.known(csv_param(request, "properties"))
    history = csv_param(request, "propertiesWithHistory")
    if history and asked > MAX_WITH_HISTORY:
        raise bad_request(
            f"Paging limit with propertiesWithHistory is {MAX_WITH_HISTORY}, got {asked}",
            limit=[str(asked)],
        )
    limit = min(max(asked, 1), MAX_PAGE)
    companies, next_after = sandbox.companies.page(
        request.query_params.get("after"), limit, archived=bool_param(request, "archived")
    )
    null_for_unset = sandbox.config.unset_properties_as_null
    results = [c.to_json(properties, history, null_for_unset=null_for_unset) for c in companies]
    body: JsonDict = {"results": results}
    if next_after is not None:
        link = str(request.url.include_query_params(after=next_after))
        body["paging"] = {"next": {"after": next_after, "link": link}}
    return JSONResponse(body)


# -- batches ---------------------------------------------------------------------------


async def batch_create(request: Request) -> Response:
    requested_at = now_iso()
    sandbox = sandbox_of(request)
    inputs = [create_input(item) for item in batch_inputs(await json_body(request))]
    sandbox.properties.validate_batch([item["properties"] for item in inputs])
    results: list[JsonDict] = []
    errors: list[JsonDict] = []
    for item in inputs:
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
    body = object_body(await json_body(request))
    inputs = batch_inputs(body)
    id_property = optional_string(body, "idProperty") or request.query_params.get("idProperty")
    archived = bool_param(request, "archived") or optional_bool(body, "archived")
    properties = sandbox.properties.known(string_list(body, "properties"))
    history = string_list(body, "propertiesWithHistory")
    refs = [id_input(item) for item in inputs]
    if history and len(refs) > MAX_WITH_HISTORY:
        raise bad_request(
            f"Batch read with propertiesWithHistory takes at most {MAX_WITH_HISTORY} inputs, "
            f"got {len(refs)}",
            inputs=[str(len(refs))],
        )
    results: list[JsonDict] = []
    seen: set[str] = set()
    missing: list[str] = []
    null_for_unset = sandbox.config.unset_properties_as_null
    for ref in refs:
        company = sandbox.companies.find(ref, id_property=id_property, archived=archived)
        if company is None:
            missing.append(ref)
        elif company.id not in seen:
            seen.add(company.id)
            results.append(company.to_json(properties, history, null_for_unset=null_for_unset))
    errors = [_not_found_error(missing)] if missing else []
    return _batch_answer(requested_at, results, errors, 200)


async def batch_update(request: Request) -> Response:
    requested_at = now_iso()
    sandbox = sandbox_of(request)
    inputs = [write_input(item) for item in batch_inputs(await json_body(request))]
    refs = [object_id(item["id"]) for item in inputs]
    id_properties = [sandbox.companies.update_key(item.get("idProperty")) for item in inputs]
    refuse_duplicate_ids(inputs)
    sandbox.properties.validate_batch([item["properties"] for item in inputs])
    results: list[JsonDict] = []
    errors: list[JsonDict] = []
    missing: list[str] = []
    for item, ref, id_property in zip(inputs, refs, id_properties, strict=True):
        try:
            company = sandbox.companies.update(
                ref, input_properties(item), sandbox.api_source, id_property=id_property
            )
        except ApiError as exc:
            if exc.category == "OBJECT_NOT_FOUND" and exc.status == 404:
                missing.append(ref)
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
    inputs = [write_input(item) for item in batch_inputs(await json_body(request))]
    keys = [object_id(item["id"]) for item in inputs]
    default_id_property = request.query_params.get("idProperty")
    id_properties = [
        sandbox.companies.upsert_key(optional_string(item, "idProperty") or default_id_property)
        for item in inputs
    ]
    refuse_duplicate_ids(inputs)
    sandbox.properties.validate_batch(
        [{**item["properties"], name: key}
         for item, name, key in zip(inputs, id_properties, keys, strict=True)]
    )  # fmt: skip
    results: list[JsonDict] = []
    errors: list[JsonDict] = []
    for item, key, id_property in zip(inputs, keys, id_properties, strict=True):
        try:
            company, new = sandbox.companies.upsert(
                key, id_property, input_properties(item), sandbox.api_source
            )
        except ApiError as exc:
            errors.append(exc.standard_error({"ids": [key], **_trace(item)}))
        else:
            results.append(_with_trace({**company.to_json(ALL), "new": new}, item))
    return _batch_answer(requested_at, results, errors, 200)


async def batch_archive(request: Request) -> Response:
    sandbox = sandbox_of(request)
    refs = [id_input(item) for item in batch_inputs(await json_body(request))]
    for ref in refs:
        sandbox.companies.archive(ref, sandbox.api_source)
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
    body = object_body(await json_body(request))
    primary = object_id(body.get("primaryObjectId"), "primaryObjectId")
    other = object_id(body.get("objectIdToMerge"), "objectIdToMerge")
    company = sandbox.companies.merge(primary, other, sandbox.api_source)
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
