"""What the HubSpot client takes and gives back: companies, batch inputs and per-input outcomes.

Property values are HubSpot's strings (numbers, booleans and dates included); normalizing them
is the sync core's job, not the client's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from app.hubspot.errors import HubSpotError

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class PropertyVersion:
    """One historic value of a property (`propertiesWithHistory`)."""

    value: str | None
    timestamp: str | None
    source_type: str | None = None
    source_id: str | None = None


@dataclass(frozen=True)
class HubSpotCompany:
    id: str
    properties: dict[str, str | None]
    created_at: str | None = None
    updated_at: str | None = None
    archived: bool = False
    new: bool | None = None  # upsert only: True when HubSpot created the company
    properties_with_history: dict[str, list[PropertyVersion]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HubSpotCompany:
        raw = data.get("properties") or {}
        history = data.get("propertiesWithHistory")
        # JSON's keys are text, and HubSpot's values nearly always are: taken as they come
        # (a batch answer holds a hundred companies of a dozen properties each).
        properties = {k: v if v is None or type(v) is str else str(v) for k, v in raw.items()}
        new = data.get("new")
        return cls(
            id=str(data["id"]),
            properties=properties,
            created_at=_opt(data.get("createdAt")),
            updated_at=_opt(data.get("updatedAt")),
            archived=bool(data.get("archived", False)),
            new=new if isinstance(new, bool) else None,
            properties_with_history={}
            if not history
            else {
                str(name): [
                    PropertyVersion(
                        value=_opt(v.get("value")),
                        timestamp=_opt(v.get("timestamp")),
                        source_type=_opt(v.get("sourceType")),
                        source_id=_opt(v.get("sourceId")),
                    )
                    for v in versions
                    if isinstance(v, dict)
                ]
                for name, versions in history.items()
                if isinstance(versions, list)
            },
        )


@dataclass(frozen=True)
class UpsertInput:
    """Create or update the company whose unique property (`warp_ban`) equals `id_value`."""

    id_value: str
    properties: Mapping[str, str]


@dataclass(frozen=True)
class UpdateInput:
    """Update the company `id` (a HubSpot id, or a unique property value with `id_property`)."""

    id: str
    properties: Mapping[str, str]


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one input: exactly one of `company` and `error` is set."""

    key: str  # the input's id or unique value, as given
    company: HubSpotCompany | None = None
    error: HubSpotError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class BatchResult:
    """One outcome per input, in input order, however many requests it took."""

    outcomes: list[BatchOutcome]

    def __iter__(self) -> Iterator[BatchOutcome]:
        return iter(self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    @property
    def companies(self) -> list[HubSpotCompany]:
        return [o.company for o in self.outcomes if o.company is not None]

    @property
    def errors(self) -> list[BatchOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    def get(self, key: str) -> BatchOutcome | None:
        """The outcome of the input `key` (the first, should two share it)."""
        return self._by_key.get(key)

    @cached_property
    def _by_key(self) -> dict[str, BatchOutcome]:
        # A batch's hundred pairs each ask for theirs: one index, not a scan each.
        index: dict[str, BatchOutcome] = {}
        for outcome in self.outcomes:
            index.setdefault(outcome.key, outcome)
        return index


@dataclass(frozen=True)
class CompanyPage:
    companies: list[HubSpotCompany]
    after: str | None  # cursor of the next page; None on the last


@dataclass(frozen=True)
class SearchPage:
    companies: list[HubSpotCompany]
    total: int
    after: str | None  # cursor of the next page; None on the last


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)
