"""The in-memory store: per tenant, TI alert definitions and IOCs (indexed) and MDE indicators; per
Sentinel workspace, its STIX objects.

Every lookup the API serves is by index (id, definition, Type+Value, Name), so the cost of a
request does not grow with the store; only unfiltered listings walk it, page by page.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from importer.emulator.sentinel_store import WorkspaceObjects

__all__ = ["Entity", "MdeTenant", "Store", "TiTenant", "value_key"]

Entity = dict[str, Any]


def value_key(ioc_type: str, value: str) -> tuple[str, str]:
    """The identity of an indicator value: its type and the value folded to lower case.

    Hashes, domains and IPv6 addresses compare case-insensitively (as the service's SQL collation did).
    """
    return ioc_type, value.lower()


@dataclass
class TiTenant:
    """One tenant's alert definitions and IOCs with the indexes the API queries by."""

    definitions: dict[int, Entity] = field(default_factory=dict)
    by_name: dict[str, dict[int, None]] = field(default_factory=dict)  # casefolded Name -> ids
    iocs: dict[int, Entity] = field(default_factory=dict)
    iocs_by_definition: dict[int, dict[int, None]] = field(default_factory=dict)  # ordered id sets
    iocs_by_value: dict[tuple[str, str], dict[int, None]] = field(default_factory=dict)
    _copies: dict[tuple[int, str, str], int] = field(default_factory=dict)  # (def, Type, value) -> n
    duplicates_by_definition: dict[int, int] = field(default_factory=dict)
    duplicates: int = 0
    non_equals: int = 0
    next_definition_id: int = 1
    next_ioc_id: int = 1

    # --- alert definitions -------------------------------------------------------------------
    def add_definition(self, entity: Entity) -> Entity:
        definition_id = self.next_definition_id
        self.next_definition_id += 1
        entity = {"Id": definition_id, **entity}
        self.definitions[definition_id] = entity
        self.by_name.setdefault(entity["Name"].casefold(), {})[definition_id] = None
        self.iocs_by_definition[definition_id] = {}
        self.duplicates_by_definition[definition_id] = 0
        return entity

    def rename_definition(self, definition_id: int, new_name: str) -> None:
        entity = self.definitions[definition_id]
        self._unindex_name(definition_id, entity["Name"])
        entity["Name"] = new_name
        self.by_name.setdefault(new_name.casefold(), {})[definition_id] = None

    def _unindex_name(self, definition_id: int, name: str) -> None:
        ids = self.by_name.get(name.casefold())
        if ids is not None:
            ids.pop(definition_id, None)
            if not ids:
                del self.by_name[name.casefold()]

    def delete_definition(self, definition_id: int) -> None:
        self.delete_iocs_of(definition_id)
        entity = self.definitions.pop(definition_id)
        self._unindex_name(definition_id, entity["Name"])
        del self.iocs_by_definition[definition_id]
        del self.duplicates_by_definition[definition_id]

    def delete_iocs_of(self, definition_id: int) -> None:
        for ioc_id in list(self.iocs_by_definition[definition_id]):
            self.delete_ioc(ioc_id)

    # --- IOCs ----------------------------------------------------------------------------------
    def add_ioc(self, entity: Entity) -> Entity:
        ioc_id = self.next_ioc_id
        self.next_ioc_id += 1
        entity = {"Id": ioc_id, **entity}
        self.iocs[ioc_id] = entity
        self._index_ioc(ioc_id, entity)
        return entity

    def replace_ioc(self, ioc_id: int, entity: Entity) -> None:
        """Swap an IOC's fields (PATCH), keeping every index and counter right."""
        self._unindex_ioc(ioc_id, self.iocs[ioc_id])
        self.iocs[ioc_id] = entity
        self._index_ioc(ioc_id, entity)

    def delete_ioc(self, ioc_id: int) -> None:
        self._unindex_ioc(ioc_id, self.iocs.pop(ioc_id))

    def _index_ioc(self, ioc_id: int, entity: Entity) -> None:
        definition_id: int = entity["AlertDefinitionId"]
        key = value_key(entity["Type"], entity["Value"])
        self.iocs_by_definition[definition_id][ioc_id] = None
        self.iocs_by_value.setdefault(key, {})[ioc_id] = None
        copy_key = (definition_id, *key)
        copies = self._copies.get(copy_key, 0)
        self._copies[copy_key] = copies + 1
        if copies:
            self.duplicates += 1
            self.duplicates_by_definition[definition_id] += 1
        if entity["DetectionFunction"] != "Equals":
            self.non_equals += 1

    def _unindex_ioc(self, ioc_id: int, entity: Entity) -> None:
        definition_id: int = entity["AlertDefinitionId"]
        key = value_key(entity["Type"], entity["Value"])
        self.iocs_by_definition[definition_id].pop(ioc_id, None)
        ids = self.iocs_by_value[key]
        ids.pop(ioc_id, None)
        if not ids:
            del self.iocs_by_value[key]
        copy_key = (definition_id, *key)
        copies = self._copies[copy_key]
        if copies > 1:
            self._copies[copy_key] = copies - 1
            self.duplicates -= 1
            self.duplicates_by_definition[definition_id] -= 1
        else:
            del self._copies[copy_key]
        if entity["DetectionFunction"] != "Equals":
            self.non_equals -= 1


@dataclass
class MdeTenant:
    """One tenant's Defender for Endpoint indicators, unique by (indicatorType, value).

    An indicator whose expirationTime has passed stays stored (its id can still be deleted, a new
    submit of its value and type updates it) but is no longer active: it is not listed and does not
    count against the tenant's cap. ``expired`` holds those ids, kept current by ``refresh`` from a
    heap of expiry times, so counting the active ones never walks the store.
    """

    indicators: dict[str, Entity] = field(default_factory=dict)
    by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    _expires_at: dict[str, float] = field(default_factory=dict)  # id -> epoch seconds, if it expires
    _expiries: list[tuple[float, str]] = field(default_factory=list)  # heap; stale entries skipped
    next_id: int = 1

    def find(self, indicator_type: str, value: str) -> Entity | None:
        indicator_id = self.by_value.get(value_key(indicator_type, value))
        return None if indicator_id is None else self.indicators[indicator_id]

    def add(self, entity: Entity) -> Entity:
        indicator_id = str(self.next_id)
        self.next_id += 1
        entity = {"id": indicator_id, **entity}
        self.indicators[indicator_id] = entity
        self.by_value[value_key(entity["indicatorType"], entity["indicatorValue"])] = indicator_id
        return entity

    def delete(self, indicator_id: str) -> bool:
        entity = self.indicators.pop(indicator_id, None)
        if entity is None:
            return False
        del self.by_value[value_key(entity["indicatorType"], entity["indicatorValue"])]
        self.expired.discard(indicator_id)
        self._expires_at.pop(indicator_id, None)
        return True

    # --- expiry ----------------------------------------------------------------------------------
    def set_expiry(self, indicator_id: str, expires_at: float | None, now: float) -> None:
        """Record when the indicator stops being active (None: never); it may be expired already."""
        if expires_at is None:
            self._expires_at.pop(indicator_id, None)
            self.expired.discard(indicator_id)
            return
        self._expires_at[indicator_id] = expires_at
        if expires_at <= now:
            self.expired.add(indicator_id)
        else:
            self.expired.discard(indicator_id)
            heapq.heappush(self._expiries, (expires_at, indicator_id))

    def refresh(self, now: float) -> None:
        """Move the indicators whose expiry has come by ``now`` into ``expired``."""
        heap = self._expiries
        while heap and heap[0][0] <= now:
            expires_at, indicator_id = heapq.heappop(heap)
            if self._expires_at.get(indicator_id) == expires_at:  # else deleted or re-dated since
                self.expired.add(indicator_id)

    def active_count(self, now: float) -> int:
        self.refresh(now)
        return len(self.indicators) - len(self.expired)


@dataclass
class Store:
    """All tenants and workspaces; each springs into existence on first use."""

    ti: dict[str, TiTenant] = field(default_factory=dict)
    mde: dict[str, MdeTenant] = field(default_factory=dict)
    sentinel: dict[str, WorkspaceObjects] = field(default_factory=dict)  # by workspace id, lower case

    def ti_tenant(self, tenant: str) -> TiTenant:
        found = self.ti.get(tenant)
        if found is None:
            found = self.ti[tenant] = TiTenant()
        return found

    def mde_tenant(self, tenant: str) -> MdeTenant:
        found = self.mde.get(tenant)
        if found is None:
            found = self.mde[tenant] = MdeTenant()
        return found

    def sentinel_workspace(self, workspace_id: str) -> WorkspaceObjects:
        found = self.sentinel.get(workspace_id.lower())
        if found is None:
            found = self.sentinel[workspace_id.lower()] = WorkspaceObjects(workspace_id)
        return found

    def clear(self) -> None:
        self.ti.clear()
        self.mde.clear()
        self.sentinel.clear()
