"""The HubSpot client: the CRM company and property calls hubsync makes, and nothing else.

One `httpx.AsyncClient` per `HubSpotClient`, with explicit timeouts, carries every call. Each
call first takes a grant from the rate limiter (search from its own), reports HubSpot's
rate-limit headers back to it, and turns any failure into the typed errors of
`app.hubspot.errors`. A 429 pauses the limiter's bucket for the whole deployment before the
error is raised.

A pause longer than the limiter's `max_pause_wait` (the daily limit) is not waited out: the
call raises at once (`HubSpotDailyLimitError`, or `HubSpotRateLimitError` with category
PAUSED) with `retry_after` = the rest of the pause.

Retries: a retryable error is tried again up to `max_retries` times, waiting `retry_after` (or
a short exponential backoff), but never longer than `max_retry_wait` per wait: anything longer
is raised for the queue to schedule. The daily limit and permanent errors are never retried.

Batch calls take any number of inputs and send them in chunks of at most 100 (HubSpot's
limit), in order; the `BatchResult` has one outcome per input. A write HubSpot rejects whole
for a bad value (400 VALIDATION_ERROR) is split until the bad input is isolated, which alone
fails; any other whole-request failure of a chunk is raised at once (the calls are idempotent,
so the caller may repeat them).

The access token lives in a `Secret` until the moment a request is sent; it is in no repr,
log line or error.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, tzinfo
from typing import Any

import httpx
import orjson

from app.hubspot.batch import (
    BATCH_LIMIT,
    HISTORY_BATCH_LIMIT,
    WriteChunk,
    chunks,
    map_batch_response,
    write_chunks,
)
from app.hubspot.errors import (
    HubSpotDailyLimitError,
    HubSpotError,
    HubSpotRateLimitError,
    HubSpotRetryableError,
    HubSpotTransportError,
    HubSpotValidationError,
    error_from_response,
)
from app.hubspot.models import (
    BatchOutcome,
    BatchResult,
    CompanyPage,
    HubSpotCompany,
    JsonDict,
    SearchPage,
    UpdateInput,
    UpsertInput,
)
from app.hubspot.paths import ACCOUNT_DETAILS, DEFAULT_API_VERSION, ApiPaths
from app.hubspot.paths import operation as request_operation
from app.hubspot.ratelimit import (
    DAILY_PAUSE_REASON,
    RateLimiter,
    RateLimitHeaders,
    RateLimitPausedError,
)
from app.metrics.instruments import observe_hubspot_request
from app.settings import Secret, Settings

logger = logging.getLogger(__name__)

PAGE_LIMIT = 100
SEARCH_LIMIT = 200
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
USER_AGENT = "hubsync/0.1"
# A whole-batch refusal with these categories concerns every input alike (a property that
# does not exist): splitting the batch would only repeat it.
_NOT_ABOUT_ONE_INPUT = frozenset({"PROPERTY_DOESNT_EXIST"})


class _BearerAuth(httpx.Auth):
    """Adds the token to each outgoing request; holds it as a `Secret` in between."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(**********)"


class HubSpotClient:
    def __init__(
        self,
        *,
        base_url: str,
        access_token: Secret | None,
        limiter: RateLimiter,
        search_limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        max_retry_wait: float = 30.0,
        daily_reset_timezone: tzinfo = UTC,
        api_version: str = DEFAULT_API_VERSION,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.paths = ApiPaths(api_version)
        self._token = access_token
        self._limiter = limiter
        self._search_limiter = search_limiter or limiter
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._daily_tz = daily_reset_timezone
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=_BearerAuth(access_token) if access_token is not None else None,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        limiter: RateLimiter,
        search_limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        base_url: str | None = None,
    ) -> HubSpotClient:
        return cls(
            base_url=base_url or settings.hubspot_base_url,
            access_token=settings.hubspot_access_token,
            limiter=limiter,
            search_limiter=search_limiter,
            transport=transport,
            api_version=settings.hubspot_api_version,
            daily_reset_timezone=settings.account_timezone,
        )

    def __repr__(self) -> str:
        auth = "bearer" if self._token is not None else "none"
        return f"HubSpotClient(base_url={self.base_url!r}, auth={auth!r})"

    @property
    def limiter(self) -> RateLimiter:
        """The general bucket's limiter (the worker sizes its lanes by it)."""
        return self._limiter

    @property
    def search_limiter(self) -> RateLimiter:
        """The search bucket's limiter."""
        return self._search_limiter

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> HubSpotClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # -- companies -----------------------------------------------------------------------

    async def get_company(
        self,
        company_id: str,
        properties: Sequence[str],
        properties_with_history: Sequence[str] | None = None,
        *,
        id_property: str | None = None,
    ) -> HubSpotCompany:
        """One company; a merged-away id answers with the surviving company (another id).
        Raises `HubSpotNotFoundError` when there is none (or it is archived)."""
        params: dict[str, str] = {"properties": ",".join(properties), "archived": "false"}
        if properties_with_history:
            params["propertiesWithHistory"] = ",".join(properties_with_history)
        if id_property:
            params["idProperty"] = id_property
        data = await self._call("GET", self.paths.company(company_id), params=params)
        return HubSpotCompany.from_json(data)

    async def batch_read_companies(
        self,
        ids: Sequence[str],
        properties: Sequence[str],
        id_property: str | None = None,
        *,
        properties_with_history: Sequence[str] = (),
    ) -> BatchResult:
        """Outcomes keyed by the ids given (duplicates are read once and share the outcome).
        With `properties_with_history`, at most 50 companies a request (HubSpot's limit)."""
        unique = list(dict.fromkeys(ids))
        # hs_merged_object_ids lets a merged-away id be matched to the survivor that answers.
        extra = [id_property] if id_property else ["hs_merged_object_ids"]
        wanted = list(dict.fromkeys([*properties, *extra]))
        outcomes: dict[str, BatchOutcome] = {}
        size = HISTORY_BATCH_LIMIT if properties_with_history else BATCH_LIMIT
        for chunk in chunks(unique, size):
            body: JsonDict = {
                "inputs": [{"id": key} for key in chunk],
                "properties": wanted,
                "propertiesWithHistory": list(properties_with_history),
            }
            if id_property:
                body["idProperty"] = id_property
            payload = await self._call("POST", self.paths.companies_batch("read"), json=body)
            for outcome in map_batch_response(chunk, payload, id_property=id_property):
                outcomes[outcome.key] = outcome
        return BatchResult([outcomes[key] for key in ids])

    async def batch_upsert_companies(
        self, inputs: Sequence[UpsertInput], id_property: str = "warp_ban"
    ) -> BatchResult:
        """Create or update by a unique property; each company's `new` says which happened."""
        entries = [
            (
                item.id_value,
                {
                    "id": item.id_value,
                    "idProperty": id_property,
                    # Set on creation anyway; sent so every result carries the key back.
                    "properties": {**item.properties, id_property: item.id_value},
                },
            )
            for item in inputs
        ]
        return await self._batch_write(self.paths.companies_batch("upsert"), entries, id_property)

    async def batch_update_companies(
        self, inputs: Sequence[UpdateInput], id_property: str | None = None
    ) -> BatchResult:
        """Update by HubSpot id (or by a unique property with `id_property`). An empty
        string clears a value."""
        entries = [
            (
                item.id,
                {"id": item.id, "properties": dict(item.properties)}
                | ({"idProperty": id_property} if id_property else {}),
            )
            for item in inputs
        ]
        return await self._batch_write(self.paths.companies_batch("update"), entries, id_property)

    async def _batch_write(
        self, path: str, entries: Sequence[tuple[str, JsonDict]], id_property: str | None
    ) -> BatchResult:
        outcomes: list[BatchOutcome] = []
        for chunk in write_chunks(entries):
            outcomes += await self._write_chunk(path, chunk, id_property)
        return BatchResult(outcomes)

    async def _write_chunk(
        self, path: str, chunk: WriteChunk, id_property: str | None
    ) -> list[BatchOutcome]:
        """One batch write. HubSpot may reject a whole batch (400 "Property values were not
        valid") for one bad input: then the batch is split in halves and each half sent again,
        until the bad input stands alone and gets the error as its own outcome — a handful of
        requests (about 2·log2 n for one bad input), and every other input is written."""
        try:
            payload = await self._call("POST", path, json={"inputs": chunk.inputs})
        except HubSpotValidationError as exc:
            if exc.category in _NOT_ABOUT_ONE_INPUT:
                raise
            if len(chunk.keys) == 1:
                return [BatchOutcome(key=chunk.keys[0], company=None, error=exc)]
            first, second = chunk.halves()
            logger.info("HubSpot rejected a batch of %d whole; splitting it", len(chunk.keys))
            return [
                *await self._write_chunk(path, first, id_property),
                *await self._write_chunk(path, second, id_property),
            ]
        return map_batch_response(
            chunk.keys, payload, id_property=id_property, trace_ids=chunk.traces
        )

    async def archive_company(self, company_id: str) -> None:
        """Archive (HubSpot's delete; restorable for 90 days)."""
        await self._call("DELETE", self.paths.company(company_id))

    async def iter_companies(
        self, properties: Sequence[str], *, archived: bool = False
    ) -> AsyncIterator[HubSpotCompany]:
        """Every company, page by page (100 a request), following `paging.next.after`."""
        after: str | None = None
        while True:
            page = await self.list_companies_page(properties, after, archived=archived)
            for company in page.companies:
                yield company
            after = page.after
            if after is None:
                return

    async def list_companies_page(
        self,
        properties: Sequence[str],
        after: str | None = None,
        *,
        archived: bool = False,
        limiter: RateLimiter | None = None,
    ) -> CompanyPage:
        """One page of the list API (100 companies); `after` of the answer is the cursor of
        the next page, which stays valid later (a resumed scan passes it back). `limiter`:
        the grants to take instead of the client's own (a stream's `GrantAhead`)."""
        params = {
            "limit": str(PAGE_LIMIT),
            "properties": ",".join(properties),
            "archived": "true" if archived else "false",
        }
        if after:
            params["after"] = after
        data = await self._call("GET", self.paths.companies, params=params, limiter=limiter)
        companies = [HubSpotCompany.from_json(raw) for raw in data.get("results") or []]
        return CompanyPage(companies, _next_after(data))

    def with_limiter(
        self, limiter: RateLimiter, search_limiter: RateLimiter | None = None
    ) -> HubSpotClient:
        """This client over the same connection pool, its general calls paced by `limiter`
        and its searches by `search_limiter` (unchanged if None), e.g. limiters capped to a
        share of the window. Closing it closes the shared pool: close only the original."""
        twin = copy.copy(self)
        twin._limiter = limiter
        if search_limiter is not None:
            twin._search_limiter = search_limiter
        return twin

    async def search_companies(
        self,
        filter_groups: Sequence[Mapping[str, Any]],
        properties: Sequence[str],
        sorts: Sequence[Any] = (),
        limit: int = 100,
        after: str | None = None,
        *,
        query: str | None = None,
    ) -> SearchPage:
        """One page of a search (HubSpot caps a query at 10,000 results; page big scans by
        `hs_object_id`). Uses the search bucket of the rate limit."""
        if not 1 <= limit <= SEARCH_LIMIT:
            raise ValueError(f"search limit must be 1..{SEARCH_LIMIT}, got {limit}")
        body: JsonDict = {
            "filterGroups": [dict(group) for group in filter_groups],
            "properties": list(properties),
            "sorts": list(sorts),
            "limit": limit,
        }
        if after is not None:
            body["after"] = after
        if query is not None:
            body["query"] = query
        data = await self._call("POST", self.paths.companies_search, json=body, search=True)
        companies = [HubSpotCompany.from_json(raw) for raw in data.get("results") or []]
        return SearchPage(companies, int(data.get("total") or 0), _next_after(data))

    # -- account -------------------------------------------------------------------------

    async def account_details(self) -> JsonDict:
        """The portal the token belongs to (`portalId`, `accountType`, time zone, …)."""
        return await self._call("GET", ACCOUNT_DETAILS)

    # -- properties ----------------------------------------------------------------------

    async def list_property_groups(self) -> list[JsonDict]:
        data = await self._call("GET", self.paths.company_property_groups)
        return list(data.get("results") or [])

    async def create_property_group(
        self, name: str, label: str, display_order: int = -1
    ) -> JsonDict:
        body = {"name": name, "label": label, "displayOrder": display_order}
        return await self._call("POST", self.paths.company_property_groups, json=body)

    async def list_properties(self) -> list[JsonDict]:
        data = await self._call("GET", self.paths.company_properties, params={"archived": "false"})
        return list(data.get("results") or [])

    async def get_property(self, name: str) -> JsonDict:
        return await self._call("GET", self.paths.company_property(name))

    async def create_property(self, definition: Mapping[str, Any]) -> JsonDict:
        return await self._call("POST", self.paths.company_properties, json=dict(definition))

    async def update_property(self, name: str, changes: Mapping[str, Any]) -> JsonDict:
        return await self._call("PATCH", self.paths.company_property(name), json=dict(changes))

    # -- transport -----------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        search: bool = False,
        limiter: RateLimiter | None = None,
    ) -> JsonDict:
        """The JSON body of a 2xx answer ({} for 204), after retries. `limiter`: instead of
        the client's own for this call."""
        if limiter is None:
            limiter = self._search_limiter if search else self._limiter
        attempt = 0
        while True:
            try:
                return await self._send(
                    method, path, params=params, json=json, limiter=limiter, search=search
                )
            except HubSpotRetryableError as exc:
                wait = exc.retry_after
                if wait is None:
                    backoff = min(8.0, 0.5 * 2**attempt, self._max_retry_wait)
                    wait = backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto
                if attempt >= self._max_retries or wait > self._max_retry_wait:
                    raise
                attempt += 1
                logger.info(
                    "HubSpot %s %s: %s; retry %d in %.1f s", method, path, exc, attempt, wait
                )
                # After a 429 the limiter's pause already holds the next request back.
                if not isinstance(exc, HubSpotRateLimitError):
                    await asyncio.sleep(wait)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        json: Any,
        limiter: RateLimiter,
        search: bool,
    ) -> JsonDict:
        try:
            grant = await limiter.acquire()
        except RateLimitPausedError as exc:
            paused = HubSpotDailyLimitError if exc.daily else HubSpotRateLimitError
            raise paused(str(exc), category="PAUSED", retry_after=exc.seconds) from None
        started = time.monotonic()
        try:
            response = await self._http.request(
                method,
                path,
                params=params,
                # orjson: a batch's hundred inputs encoded in a tenth of the stdlib's time
                content=None if json is None else orjson.dumps(json),
                headers=None if json is None else _JSON_BODY,
            )
        except httpx.TimeoutException as exc:
            observe_hubspot_request(request_operation(method, path), None, 0.0)
            raise HubSpotTransportError(
                f"{method} {path}: no answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            observe_hubspot_request(request_operation(method, path), None, 0.0)
            raise HubSpotTransportError(
                f"{method} {path}: connection failed ({type(exc).__name__}: {exc})"
            ) from exc
        finally:
            # Count the request from its answer: HubSpot counted it on arrival, which may have
            # been well after the grant on a busy machine.
            answered = grant.answered = time.monotonic()
            await limiter.settle(grant)
        elapsed = answered - started
        observe_hubspot_request(request_operation(method, path), response.status_code, elapsed)
        logger.debug("HubSpot %s %s -> %d in %.3f s", method, path, response.status_code, elapsed)
        if not search:
            await limiter.observe(RateLimitHeaders.from_headers(response.headers))
        if response.is_success:
            return self._json_body(response, method, path)
        error = error_from_response(
            response.status_code,
            _safe_json(response),
            response.headers,
            daily_reset_timezone=self._daily_tz,
        )
        error.message = self._scrub(error.message)
        await self._on_error(error, limiter)
        logger.warning("HubSpot %s %s failed: %s", method, path, error)
        raise error

    async def _on_error(self, error: HubSpotError, limiter: RateLimiter) -> None:
        if isinstance(error, HubSpotDailyLimitError):
            for bucket in {id(self._limiter): self._limiter, id(limiter): limiter}.values():
                await bucket.pause(error.retry_after or 0.0, DAILY_PAUSE_REASON)
        elif isinstance(error, HubSpotRateLimitError) and error.retry_after:
            await limiter.pause(error.retry_after, f"HubSpot 429 {error.policy_name or ''}".strip())

    def _json_body(self, response: httpx.Response, method: str, path: str) -> JsonDict:
        if response.status_code == 204 or not response.content:
            return {}
        body = _safe_json(response)
        if not isinstance(body, dict):
            raise HubSpotRetryableError(
                f"{method} {path}: HubSpot answered {response.status_code} with a body that is "
                "not a JSON object",
                status=response.status_code,
                category="INVALID_RESPONSE",
            )
        return body

    def _scrub(self, text: str) -> str:
        token = self._token.reveal() if self._token is not None else ""
        return text.replace(token, "**********") if len(token) >= 4 else text


def _next_after(data: Mapping[str, Any]) -> str | None:
    paging = data.get("paging")
    nxt = paging.get("next") if isinstance(paging, dict) else None
    after = nxt.get("after") if isinstance(nxt, dict) else None
    return str(after) if after not in (None, "") else None


_JSON_BODY = {"Content-Type": "application/json"}


def _safe_json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)  # HubSpot answers UTF-8 JSON
    except ValueError:  # orjson.JSONDecodeError is one
        return None
