"""Batch requests: splitting inputs into requests of at most 100, and reading each answer
(200, 201 or 207) back onto the inputs that were sent.

HubSpot answers a batch with `results` (in no promised order) and, on a 207, `errors`, each
naming the inputs it concerns only through its `context`. Clients that read `results` alone
silently lose the failures; clients that read the errors alone cannot tell which record failed.
Here every input gets exactly one outcome, matched in this order:

1. `objectWriteTraceId`: writes send a unique trace id per input and HubSpot echoes it on the
   result, and in an error's context when it can;
2. the key: a result's `id`, or its value of the unique property; an error's context values
   (`ids`, `warp_ban`, ... whatever the list is called);
3. a record read by a merged-away id comes back under its new id: `hs_merged_object_ids`, or,
   when exactly one input and one result are left over, each other;
4. an error that names no input is given to every input still without an outcome;
5. an input with nothing at all gets a retryable "no result" error rather than vanishing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from app.hubspot.errors import HubSpotError, HubSpotRetryableError, error_from_item
from app.hubspot.models import BatchOutcome, HubSpotCompany, JsonDict

BATCH_LIMIT = 100  # HubSpot's maximum inputs per batch request
HISTORY_BATCH_LIMIT = 50  # ... and per batch read asking for propertiesWithHistory
NO_RESULT = "NO_RESULT"
T = TypeVar("T")


@dataclass(frozen=True)
class WriteChunk:
    """One batch write request: its inputs, their keys and their unique trace ids."""

    keys: list[str]
    traces: list[str]
    inputs: list[JsonDict]

    def halves(self) -> tuple[WriteChunk, WriteChunk]:
        """The chunk split in two (each input keeps its trace id), to isolate a bad input."""
        middle = len(self.keys) // 2
        return (
            WriteChunk(self.keys[:middle], self.traces[:middle], self.inputs[:middle]),
            WriteChunk(self.keys[middle:], self.traces[middle:], self.inputs[middle:]),
        )


def chunks(items: Sequence[T], size: int = BATCH_LIMIT) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def write_chunks(entries: Sequence[tuple[str, JsonDict]]) -> list[WriteChunk]:
    """(key, input) pairs as requests of at most 100. A key given twice is refused: HubSpot
    would refuse the whole batch, and the caller meant one write anyway."""
    seen: set[str] = set()
    for key, _ in entries:
        if key in seen:
            raise ValueError(f"the same id {key!r} appears twice in one batch; merge the inputs")
        seen.add(key)
    requests: list[WriteChunk] = []
    for number, chunk in enumerate(chunks(entries)):
        traces = [f"hubsync-{number}-{n}" for n in range(len(chunk))]
        requests.append(
            WriteChunk(
                keys=[key for key, _ in chunk],
                traces=traces,
                inputs=[
                    {**entry, "objectWriteTraceId": trace}
                    for (_, entry), trace in zip(chunk, traces, strict=True)
                ],
            )
        )
    return requests


def map_batch_response(
    keys: Sequence[str],
    payload: Mapping[str, Any],
    *,
    id_property: str | None = None,
    trace_ids: Sequence[str] | None = None,
) -> list[BatchOutcome]:
    """One outcome per key, in the order of `keys` (which must be unique)."""
    index = {key: i for i, key in enumerate(keys)}
    by_trace = {trace: i for i, trace in enumerate(trace_ids or ())}
    companies: list[HubSpotCompany | None] = [None] * len(keys)
    errors: list[HubSpotError | None] = [None] * len(keys)
    leftover_results: list[tuple[HubSpotCompany, Mapping[str, Any]]] = []

    for raw in _dicts(payload.get("results")):
        company = HubSpotCompany.from_json(raw)
        slot = _result_slot(company, raw, index, by_trace, id_property)
        if slot is not None and companies[slot] is None:
            companies[slot] = company
        else:
            leftover_results.append((company, raw))

    unplaced: list[HubSpotError] = []
    for raw in _dicts(payload.get("errors")):
        error = error_from_item(raw)
        slots = _error_slots(error.context, index, by_trace)
        for slot in slots:
            if companies[slot] is None and errors[slot] is None:
                errors[slot] = error
        if not slots:
            unplaced.append(error)

    missing = [i for i in range(len(keys)) if companies[i] is None and errors[i] is None]
    for company, _raw in list(leftover_results):
        merged = (company.properties.get("hs_merged_object_ids") or "").split(";")
        slot = next((index[m] for m in merged if m in index and index[m] in missing), None)
        if slot is not None:
            companies[slot] = company
            missing.remove(slot)
            leftover_results.remove((company, _raw))
    if len(missing) == 1 and len(leftover_results) == 1 and not unplaced:
        companies[missing.pop()] = leftover_results[0][0]

    for slot in missing:
        errors[slot] = (
            unplaced[0]
            if unplaced
            else HubSpotRetryableError(
                "HubSpot's batch answer had neither a result nor an error for this input",
                category=NO_RESULT,
            )
        )

    return [
        BatchOutcome(key=key, company=companies[i], error=errors[i]) for i, key in enumerate(keys)
    ]


def _result_slot(
    company: HubSpotCompany,
    raw: Mapping[str, Any],
    index: Mapping[str, int],
    by_trace: Mapping[str, int],
    id_property: str | None,
) -> int | None:
    trace = raw.get("objectWriteTraceId")
    if trace is not None and str(trace) in by_trace:
        return by_trace[str(trace)]
    if id_property:
        value = company.properties.get(id_property)
        if value is not None and value in index:
            return index[value]
        return None
    return index.get(company.id)


def _error_slots(
    context: Mapping[str, list[str]], index: Mapping[str, int], by_trace: Mapping[str, int]
) -> list[int]:
    traced = [by_trace[v] for v in context.get("objectWriteTraceId", []) if v in by_trace]
    if traced:
        return sorted(set(traced))
    named = {index[v] for values in context.values() for v in values if v in index}
    return sorted(named)


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
