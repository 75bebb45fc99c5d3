"""The sandbox's companies, held in memory with HubSpot's rules.

Each company keeps every property's history (newest first) with who wrote it, so
`propertiesWithHistory` and the webhook `changeSource` come from the same facts. Unique
properties are indexed over live companies; merges give the survivor a new id and leave the old
ids as aliases that resolve to it. Every change is reported to `emit` as a `ChangeEvent`, which
the webhook dispatcher turns into HubSpot's payloads.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.sandbox.clock import iso_from_ms, now_ms
from app.sandbox.errors import JsonDict, bad_request, conflict, not_found
from app.sandbox.properties import PropertyRegistry

SYSTEM_PROPERTIES = ("createdate", "hs_lastmodifieddate", "hs_object_id")
DEFAULT_PROPERTIES = ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name")
ALL = "__all__"


@dataclass(frozen=True)
class WriteSource:
    """Who made a change: `INTEGRATION` with the app id, or `CRM_UI` with `userId:<n>`."""

    source_type: str
    source_id: str
    user_id: int | None = None


@dataclass(slots=True)
class Version:
    value: str
    timestamp_ms: int
    source_type: str
    source_id: str | None = None
    user_id: int | None = None

    def to_json(self) -> JsonDict:
        body: JsonDict = {
            "value": self.value,
            "timestamp": iso_from_ms(self.timestamp_ms),
            "sourceType": self.source_type,
        }
        if self.source_id is not None:
            body["sourceId"] = self.source_id
        if self.user_id is not None:
            body["updatedByUserId"] = self.user_id
        return body


@dataclass
class ChangeEvent:
    """One change, before it becomes a webhook event (`kind` is the subscription suffix)."""

    kind: str
    object_id: str
    occurred_ms: int
    source: WriteSource
    property_name: str | None = None
    property_value: str | None = None
    extra: JsonDict = field(default_factory=dict)


@dataclass(frozen=True)
class SeedColumns:
    """What the companies of one bulk seed share: their properties' names, in the order of
    each company's row of values, and when and by whom the values were written."""

    names: tuple[str, ...]
    timestamp_ms: int
    source: WriteSource
    position: dict[str, int] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", {name: n for n, name in enumerate(self.names)})

    def version(self, value: str) -> Version:
        source = self.source
        return Version(value, self.timestamp_ms, source.source_type, source.source_id,
                       source.user_id)  # fmt: skip


class Company:
    """One company. A bulk-seeded one holds only its row of values beside the columns its
    seed shares (`SeedColumns`), about 0.5 KB instead of 3 KB: a million fit in the sandbox.
    Its history (one version per value) is built on the first change."""

    __slots__ = ("_columns", "_history", "_row", "archived_ms", "created_ms", "id", "merged_ids",
                 "updated_ms")  # fmt: skip

    def __init__(
        self,
        id: str,
        created_ms: int,
        updated_ms: int,
        *,
        history: dict[str, list[Version]] | None = None,
        archived_ms: int | None = None,
        merged_ids: tuple[str, ...] = (),
        seeded: tuple[SeedColumns, tuple[str, ...]] | None = None,
    ) -> None:
        self.id = id
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        self.archived_ms = archived_ms
        self.merged_ids = merged_ids
        self._history = history if history is not None or seeded is not None else {}
        self._columns: SeedColumns | None = seeded[0] if seeded is not None else None
        self._row: tuple[str, ...] | None = seeded[1] if seeded is not None else None

    @property
    def history(self) -> dict[str, list[Version]]:
        """Every property's versions, newest first."""
        if self._history is None:
            columns, row = self._columns, self._row
            assert columns is not None  # noqa: S101 - a seeded company
            assert row is not None  # noqa: S101 - set with the columns
            self._history = {
                name: [columns.version(value)]
                for name, value in zip(columns.names, row, strict=True)
                if value != ""
            }
            self._columns = self._row = None
        return self._history

    @property
    def archived(self) -> bool:
        return self.archived_ms is not None

    def value(self, name: str) -> str | None:
        """The current value, with the computed system properties; None when blank."""
        if name == "hs_object_id":
            return self.id
        if name == "createdate":
            return iso_from_ms(self.created_ms)
        if name == "hs_lastmodifieddate":
            return iso_from_ms(self.updated_ms)
        if name == "hs_merged_object_ids":
            return ";".join(self.merged_ids) or None
        if self._history is None:
            return self._seeded_value(name)
        versions = self._history.get(name)
        return versions[0].value if versions and versions[0].value != "" else None

    def _seeded_value(self, name: str) -> str | None:
        columns, row = self._columns, self._row
        assert columns is not None  # noqa: S101 - a seeded company
        assert row is not None  # noqa: S101 - set with the columns
        position = columns.position.get(name)
        return row[position] or None if position is not None else None

    def _stored_names(self) -> set[str]:
        if self._history is not None:
            return set(self._history)
        columns, row = self._columns, self._row
        assert columns is not None  # noqa: S101 - a seeded company
        assert row is not None  # noqa: S101 - set with the columns
        return {name for name, value in zip(columns.names, row, strict=True) if value}

    def names(self) -> list[str]:
        extra = ["hs_merged_object_ids"] if self.merged_ids else []
        return sorted({*self._stored_names(), *SYSTEM_PROPERTIES, *extra})

    def versions(self, name: str) -> list[Version]:
        if name in SYSTEM_PROPERTIES or name == "hs_merged_object_ids":
            value = self.value(name)
            at = self.created_ms if name != "hs_lastmodifieddate" else self.updated_ms
            return [Version(value, at, "CALCULATED")] if value is not None else []
        if self._history is None:
            value = self._seeded_value(name)
            assert self._columns is not None  # noqa: S101 - a seeded company
            return [self._columns.version(value)] if value is not None else []
        return self._history.get(name, [])

    def as_of(self, moment_ms: int) -> Company | None:
        """The company as it was at `moment_ms` (None if it did not exist yet)."""
        if self.created_ms > moment_ms:
            return None
        if self.updated_ms <= moment_ms:
            return self
        history = {
            name: kept
            for name, versions in self.history.items()
            if (kept := [v for v in versions if v.timestamp_ms <= moment_ms])
        }
        stamps = [v.timestamp_ms for versions in history.values() for v in versions]
        return Company(
            id=self.id,
            created_ms=self.created_ms,
            updated_ms=max([self.created_ms, *stamps]),
            history=history,
            merged_ids=self.merged_ids,
        )

    def to_json(
        self,
        properties: list[str] | str | None = None,
        with_history: list[str] | None = None,
        *,
        null_for_unset: bool = False,
    ) -> JsonDict:
        """HubSpot's object shape; `properties` None means the defaults, ALL means every value.
        With `null_for_unset`, a property asked for by name that has no value answers null."""
        null_for_unset = null_for_unset and properties not in (None, ALL)
        if properties == ALL:
            names = [n for n in self.names() if self.value(n) is not None]
        else:
            requested = DEFAULT_PROPERTIES if properties is None else properties
            names = sorted({*requested, *SYSTEM_PROPERTIES})
        values: dict[str, Any] = {}
        for name in names:
            value = self.value(name)
            if value is not None:
                values[name] = value
            elif null_for_unset:
                values[name] = None
        body: JsonDict = {
            "id": self.id,
            "properties": values,
            "createdAt": iso_from_ms(self.created_ms),
            "updatedAt": iso_from_ms(self.updated_ms),
            "archived": self.archived,
        }
        if self.archived_ms is not None:
            body["archivedAt"] = iso_from_ms(self.archived_ms)
        if with_history:
            body["propertiesWithHistory"] = {
                name: [v.to_json() for v in self.versions(name)] for name in with_history
            }
        return body


class CompanyStore:
    def __init__(
        self,
        registry: PropertyRegistry,
        emit: Callable[[ChangeEvent], None],
        clock: Callable[[], int] = now_ms,
        first_id: int = 1001,
    ) -> None:
        self.registry = registry
        self._emit = emit
        self._clock = clock
        self._companies: dict[str, Company] = {}  # insertion order is id order
        self._aliases: dict[str, str] = {}
        self._unique: dict[str, dict[str, str]] = {}
        self._next_id = first_id
        self._order: array[int] | None = None  # sorted ids for paging, rebuilt after changes
        self._live: _LiveIndex | None = None  # for searches by id, rebuilt after changes
        self._modified: _ModifiedLog | None = None  # for searches by modification time

    # -- lookups -------------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(1 for c in self._companies.values() if not c.archived)

    def active(self) -> Iterator[Company]:
        return (c for c in self._companies.values() if not c.archived)

    def all(self, *, archived: bool = False) -> Iterator[Company]:
        return (c for c in self._companies.values() if c.archived == archived)

    def resolve(self, ref: str) -> str:
        seen = set()
        while ref in self._aliases and ref not in seen:
            seen.add(ref)
            ref = self._aliases[ref]
        return ref

    def find(
        self, ref: str, *, id_property: str | None = None, archived: bool = False
    ) -> Company | None:
        if id_property and id_property != "hs_object_id":
            prop = self.registry.get(id_property)
            if prop is None or not prop.has_unique_value:
                raise bad_request(
                    f"{id_property} is not a unique identifier property", idProperty=[id_property]
                )
            if not archived:
                owner = self._unique.get(id_property, {}).get(ref)
                return self._companies.get(owner) if owner else None
            return next((c for c in self.all(archived=True) if c.value(id_property) == ref), None)
        company = self._companies.get(self.resolve(str(ref)))
        return company if company is not None and company.archived == archived else None

    def require(self, ref: str, *, id_property: str | None = None) -> Company:
        company = self.find(ref, id_property=id_property)
        if company is None:
            raise not_found(ref)
        return company

    def page(
        self, after: str | None, limit: int, *, archived: bool = False
    ) -> tuple[list[Company], str | None]:
        """Companies in id order from id `after` on, and the cursor of the next page: a
        binary search into the sorted ids, so the 1,000th page of 100,000 costs what the
        first does."""
        start = int(after) if after and after.isdigit() else 0
        if self._order is None:  # rebuilt after a change; seeds come in any id order
            self._order = array("q", sorted(int(company_id) for company_id in self._companies))
        order = self._order
        chosen: list[Company] = []
        for position in range(bisect.bisect_left(order, start), len(order)):
            company = self._companies.get(str(order[position]))
            if company is None or company.archived != archived:
                continue
            if len(chosen) == limit:
                return chosen, company.id
            chosen.append(company)
        return chosen, None

    def live_ids(self) -> array[int]:
        """The ids of the companies not archived, ascending: a search by id range bisects
        them instead of reading every company, and counts its matches by subtraction."""
        return self._live_index().ids

    def live_created_after(self, moment_ms: int) -> list[int]:
        """The ids of the companies not archived that were created after `moment_ms`: the
        few an index that far behind does not show yet."""
        live = self._live_index()
        start = bisect.bisect_right(live.created_ms, moment_ms)
        return list(live.created_ids[start:])

    def by_id(self, company_id: int) -> Company:
        """The company stored under this id (one of `live_ids()`), aliases not followed."""
        return self._companies[str(company_id)]

    def modified_between(self, low: int, high: int, as_of_ms: int | None) -> list[Company]:
        """The companies not archived that a search for a last modification in
        [`low`, `high`] as of `as_of_ms` must look at: those last modified in it, and those
        modified since `as_of_ms` (a version before may lie in it). A superset of the
        matches, from bisecting the log of modifications rather than reading every company:
        HubSpot's search is an index, and the catch-up asks it for what changed lately."""
        log = self._modified_log()
        chosen: dict[str, Company] = {}
        companies = self._companies
        for position in range(bisect.bisect_left(log.ms, low), bisect.bisect_right(log.ms, high)):
            company = companies.get(str(log.ids[position]))
            if company is not None and company.updated_ms == log.ms[position]:
                chosen[company.id] = company  # the entry of its latest modification
        if as_of_ms is not None:
            for position in range(bisect.bisect_right(log.ms, as_of_ms), len(log.ms)):
                company = companies.get(str(log.ids[position]))
                if company is not None:
                    chosen[company.id] = company
        return [company for company in chosen.values() if not company.archived]

    # -- writes --------------------------------------------------------------------------

    def create(self, raw: Mapping[str, object], source: WriteSource) -> Company:
        values = {k: v for k, v in self.registry.normalize(raw).items() if v != ""}
        self._check_unique(values, owner=None)
        now = self._clock()
        company = Company(id=str(self._next_id), created_ms=now, updated_ms=now)
        self._next_id += 1
        for name, value in values.items():
            company.history[name] = [self._version(value, now, source)]
        self._companies[company.id] = company
        self._order = None
        if self._live is not None:
            self._live.add(company)
        self._index(company)
        self._touched(company)
        self._emit(
            ChangeEvent("creation", company.id, now, source, extra={"changeFlag": "CREATED"})
        )
        for name, value in values.items():
            self._emit(ChangeEvent("propertyChange", company.id, now, source, name, value))
        return company

    def seed(self, company_id: str, raw: Mapping[str, object], source: WriteSource) -> Company:
        """Put back a company known from elsewhere under its own id, without webhooks: how
        the embedded demo refills a restarted (empty) sandbox from hubsync's links."""
        values = {k: v for k, v in self.registry.normalize(raw).items() if v != ""}
        self._check_unique(values, owner=company_id)
        now = self._clock()
        company = Company(id=company_id, created_ms=now, updated_ms=now)
        for name, value in values.items():
            company.history[name] = [self._version(value, now, source)]
        self._companies[company.id] = company
        self._live = None
        self._order = None
        self._modified = None
        self._index(company)
        if company_id.isdigit():
            self._next_id = max(self._next_id, int(company_id) + 1)
        return company

    def seed_rows(self, columns: SeedColumns, rows: list[tuple[str, ...]]) -> range:
        """Create companies in bulk, one per row of values (normalised, "" for none) in the
        order of `columns.names`, with new ids in row order and without webhooks: a
        benchmark's million companies in seconds. All or nothing: a unique value taken
        (or twice in `rows`) refuses the lot. Returns the new ids."""
        unique = [(name, n) for n, name in enumerate(columns.names)
                  if name in set(self.registry.unique_names())]  # fmt: skip
        for name, n in unique:
            taken = self._unique.get(name, {})
            seen: dict[str, int] = {}
            for number, row in enumerate(rows):
                value = row[n]
                if value and (value in taken or seen.setdefault(value, number) != number):
                    raise conflict(name, value, taken.get(value, "another seeded company"))
        first = self._next_id
        companies = self._companies
        indexes = [(self._unique.setdefault(name, {}), n) for name, n in unique]
        created_ms = columns.timestamp_ms
        for number, row in enumerate(rows, start=first):
            company_id = str(number)
            companies[company_id] = Company(
                company_id, created_ms, created_ms, seeded=(columns, row)
            )
            for index, n in indexes:
                if row[n]:
                    index[row[n]] = company_id
        self._next_id = first + len(rows)
        self._order = None
        self._live = None
        self._modified = None
        return range(first, self._next_id)

    def update(
        self,
        ref: str,
        raw: Mapping[str, object],
        source: WriteSource,
        *,
        id_property: str | None = None,
    ) -> Company:
        company = self.require(ref, id_property=id_property)
        values = self.registry.normalize(raw)
        changes = {k: v for k, v in values.items() if (company.value(k) or "") != v}
        if not changes:
            return company
        self._check_unique(changes, owner=company.id)
        self._unindex(company)
        now = self._clock()
        for name, value in changes.items():
            company.history.setdefault(name, []).insert(0, self._version(value, now, source))
        company.updated_ms = now
        self._index(company)
        self._touched(company)
        for name, value in changes.items():
            self._emit(ChangeEvent("propertyChange", company.id, now, source, name, value))
        return company

    def update_key(self, id_property: str | None) -> str | None:
        """The unique property an update finds its record by (None: the record id). HubSpot
        refuses `hs_object_id` here, which reads take, and any property without unique values."""
        if id_property is None:
            return None
        prop = self.registry.get(id_property)
        if id_property == "hs_object_id" or prop is None or not prop.has_unique_value:
            raise bad_request(
                f"Unable to perform update by non-unique property {id_property}; "
                "leave idProperty out to update by record id",
                idProperty=[id_property],
            )
        return id_property

    def upsert_key(self, id_property: str | None) -> str:
        """The unique property an upsert matches on; HubSpot refuses a missing one, the
        record id (`hs_object_id`) and any property without unique values."""
        if not id_property:
            raise bad_request(
                "An upsert needs an idProperty naming a property with unique values",
                idProperty=[""],
            )
        prop = self.registry.get(id_property)
        if id_property == "hs_object_id" or prop is None or not prop.has_unique_value:
            raise bad_request(
                f"Unable to perform upsert by non-unique property {id_property}; "
                "use a property with unique values as the idProperty",
                idProperty=[id_property],
            )
        return id_property

    def upsert(
        self, key: str, id_property: str, raw: Mapping[str, object], source: WriteSource
    ) -> tuple[Company, bool]:
        """Update the company whose `id_property` equals `key`, or create it: (company, new)."""
        existing = self.find(key, id_property=self.upsert_key(id_property))
        if existing is not None:
            return self.update(existing.id, raw, source), False
        return self.create({**raw, id_property: key}, source), True

    def archive(self, ref: str, source: WriteSource) -> bool:
        company = self.find(ref)
        if company is None:
            return False
        self._unindex(company)
        company.archived_ms = self._clock()
        self._live = None
        self._emit(
            ChangeEvent("deletion", company.id, company.archived_ms, source,
                        extra={"changeFlag": "DELETED"})
        )  # fmt: skip
        return True

    def restore(self, ref: str, source: WriteSource) -> Company:
        company = self.find(ref, archived=True)
        if company is None:
            raise not_found(ref)
        self._check_unique({n: v for n in company.history if (v := company.value(n))}, owner=None)
        company.archived_ms = None
        company.updated_ms = self._clock()
        self._live = None
        self._index(company)
        self._touched(company)
        self._emit(ChangeEvent("restore", company.id, company.updated_ms, source,
                               extra={"changeFlag": "RESTORED"}))  # fmt: skip
        return company

    def merge(self, primary_ref: str, other_ref: str, source: WriteSource) -> Company:
        """Merge `other` into `primary`; the result gets a new id and both old ids alias it."""
        primary, other = self.require(primary_ref), self.require(other_ref)
        if primary.id == other.id:
            raise bad_request("A company cannot be merged with itself", ids=[primary.id])
        now = self._clock()
        merged = Company(
            id=str(self._next_id),
            created_ms=primary.created_ms,
            updated_ms=now,
            history={name: list(versions) for name, versions in primary.history.items()},
            merged_ids=(*primary.merged_ids, *other.merged_ids, primary.id, other.id),
        )
        self._next_id += 1
        moved = 0
        for name, versions in other.history.items():
            if primary.value(name) is None and other.value(name) is not None:
                merged.history[name] = list(versions)
                moved += 1
        for old in (primary, other):
            self._unindex(old)
            del self._companies[old.id]
            self._aliases[old.id] = merged.id
        self._companies[merged.id] = merged
        self._order = None
        self._live = None
        self._index(merged)
        self._touched(merged)
        self._emit(
            ChangeEvent(
                "merge", merged.id, now, source,
                extra={
                    "primaryObjectId": int(primary.id),
                    "mergedObjectIds": [int(other.id)],
                    "newObjectId": int(merged.id),
                    "numberOfPropertiesMoved": moved,
                },
            )
        )  # fmt: skip
        return merged

    # -- helpers -------------------------------------------------------------------------

    def _live_index(self) -> _LiveIndex:
        """Built on first use after a seed, merge, archive or restore (a create sorts itself
        in; an update changes neither the ids nor a creation time); sorted, as seeds come in
        any order."""
        if self._live is None:
            live = [(c.created_ms, int(c.id)) for c in self._companies.values() if not c.archived]
            ids = array("q", sorted(company_id for _, company_id in live))
            live.sort()
            self._live = _LiveIndex(
                ids=ids,
                created_ms=array("q", (created_ms for created_ms, _ in live)),
                created_ids=array("q", (company_id for _, company_id in live)),
            )
        return self._live

    def _modified_log(self) -> _ModifiedLog:
        """Built on first use after a seed, or after the log went out of order or stale."""
        if self._modified is None:
            entries = sorted((c.updated_ms, int(c.id)) for c in self._companies.values())
            self._modified = _ModifiedLog(
                ms=array("q", (ms for ms, _ in entries)),
                ids=array("q", (company_id for _, company_id in entries)),
            )
        return self._modified

    def _touched(self, company: Company) -> None:
        """Log a company's new `updated_ms`. A clock set back would leave the log out of
        order, and a log mostly of superseded entries costs searches: either is rebuilt."""
        log = self._modified
        if log is None:
            return
        if (log.ms and company.updated_ms < log.ms[-1]) or len(log.ms) > 2 * len(
            self._companies
        ) + 10_000:
            self._modified = None
            return
        log.ms.append(company.updated_ms)
        log.ids.append(int(company.id))

    @staticmethod
    def _version(value: str, at: int, source: WriteSource) -> Version:
        return Version(value, at, source.source_type, source.source_id, source.user_id)

    def _check_unique(self, values: Mapping[str, str], owner: str | None) -> None:
        for name in self.registry.unique_names():
            value = values.get(name)
            holder = self._unique.get(name, {}).get(value) if value else None
            if holder is not None and holder != owner:
                raise conflict(name, value or "", holder)

    def _index(self, company: Company) -> None:
        for name in self.registry.unique_names():
            value = company.value(name)
            if value is not None:
                self._unique.setdefault(name, {})[value] = company.id

    def _unindex(self, company: Company) -> None:
        for name in self.registry.unique_names():
            value = company.value(name)
            if value is not None and self._unique.get(name, {}).get(value) == company.id:
                del self._unique[name][value]


@dataclass
class _LiveIndex:
    """The companies not archived, by id and by creation time, for searches by id range;
    arrays of 8-byte integers, 16 MB at a million companies where lists of ints took 100."""

    ids: array[int]  # ascending
    created_ms: array[int]  # ascending, with
    created_ids: array[int]  # the id of the company created then

    def add(self, company: Company) -> None:
        """Sort in a new company: a rebuild over 100,000 companies costs ~40 ms, which a
        search after each create (a sync running beside a reconciliation) would pay."""
        company_id = int(company.id)
        self.ids.insert(bisect.bisect_left(self.ids, company_id), company_id)
        position = bisect.bisect_right(self.created_ms, company.created_ms)
        while (
            position > 0
            and self.created_ms[position - 1] == company.created_ms
            and (self.created_ids[position - 1] > company_id)
        ):
            position -= 1
        self.created_ms.insert(position, company.created_ms)
        self.created_ids.insert(position, company_id)


@dataclass
class _ModifiedLog:
    """Every modification since the log was built, in time order: when (`updated_ms`) and
    which company. An entry is current while the company's `updated_ms` is still its own."""

    ms: array[int]
    ids: array[int]
