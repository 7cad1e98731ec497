"""The legacy custom TI API on the wire: the only module that knows its URLs and JSON (API.md §2).

Reads (listings, lookups) retry by themselves and follow paging: ``$top``/``$skip``, and an
``@odata.nextLink`` whenever one comes. Writes are single attempts: whether and how to retry a
write whose answer was lost is the caller's decision (``target.py``), because only the caller
can check what the server already holds before sending again.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from feeds.model import Detection, Indicator, Kind
from importer.errors import AmbiguousWriteError
from importer.fields import DESCRIPTION, RECOMMENDED_ACTION, SEVERITY, TITLE
from importer.model import DefinitionSpec, RemoteIndicator, Stamp
from importer.targets.common import epoch_of, iso_utc, remote_of, stamp_of
from importer.targets.ti.fields import CATEGORY, ENABLED
from importer.targets.ti.rules import BULK_LIMIT, TI_TYPES, check_texts
from importer.transport.http import HttpClient
from importer.transport.odata import odata_pages, odata_string

__all__ = [
    "PAGE",
    "TiClient",
    "definition_body",
    "definition_changes",
    "ioc_body",
    "ioc_changes",
    "ioc_stamp",
    "remote_indicator",
    "sent_stamp",
]

PAGE = 1000  # $top of our listings
_HASH_KINDS = {"Md5": Kind.MD5, "Sha1": Kind.SHA1, "Sha256": Kind.SHA256, "DomainName": Kind.DOMAIN}
_DEFINITION_FIELDS = (
    "Title",
    "Severity",
    "Category",
    "InternalDescription",
    "UxDescription",
    "RecommendedAction",
    "Enabled",
)


def definition_body(spec: DefinitionSpec) -> dict[str, Any]:
    """The AlertDefinition JSON of ``spec``; a text the API would refuse is a ConfigError."""
    body: dict[str, Any] = {
        "Name": spec.name,
        "Title": spec[TITLE],
        "Severity": spec[SEVERITY],
        "Category": spec[CATEGORY],
        "InternalDescription": spec[DESCRIPTION],
        "UxDescription": spec[DESCRIPTION],
        "RecommendedAction": spec[RECOMMENDED_ACTION],
        "Enabled": spec[ENABLED],
    }
    check_texts(body)
    return body


def definition_changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``wanted`` that differ from the stored ``current`` (what a PATCH must carry)."""
    return {k: wanted[k] for k in _DEFINITION_FIELDS if current.get(k) != wanted[k]}


def ioc_body(
    indicator: Indicator, definition_id: str, *, detection: Detection | None, expires_at: datetime | None
) -> dict[str, Any]:
    """The IndicatorOfCompromise JSON: type, value, detection, expiry and the bind to its definition."""
    return ioc_bodies((indicator,), definition_id, detection=detection, expires_at=expires_at)[0]


def ioc_bodies(
    indicators: Iterable[Indicator],
    definition_id: str,
    *,
    detection: Detection | None,
    expires_at: datetime | None,
) -> list[dict[str, Any]]:
    """``ioc_body`` of each indicator: what a batch shares (the bind, the definition's detection and
    expiry) is worked out once, not per indicator (a bulk run builds a million of them)."""
    bind = f"AlertDefinitions({definition_id})"
    shared_detection = None if detection is None else str(detection)
    shared_expiry = None if expires_at is None else iso_utc(expires_at)
    bodies: list[dict[str, Any]] = []
    for indicator in indicators:
        body: dict[str, Any] = {
            "Type": TI_TYPES[indicator.kind],
            "Value": indicator.value,
            "DetectionFunction": shared_detection or str(indicator.detection),
            "Enabled": True,
            "AlertDefinition@odata.bind": bind,
        }
        if indicator.expires is not None:
            body["ExpiresAt"] = iso_utc(indicator.expires)
        elif shared_expiry is not None:
            body["ExpiresAt"] = shared_expiry
        bodies.append(body)
    return bodies


# The IOC's own fields beside its identity that a rerun must keep true; its expiry is the stamp's other half.
_IOC_META = ("DetectionFunction", "Enabled")
_IOC_LISTED = "Id,Type,Value," + ",".join(_IOC_META) + ",ExpiresAt"


def ioc_stamp(fields: Mapping[str, Any]) -> Stamp:
    """The stamp of an IOC body we send, or of an IOC entity the API lists (the same fields)."""
    return stamp_of((fields.get(name) for name in _IOC_META), fields.get("ExpiresAt"))


def sent_stamp(indicator: Indicator, *, detection: Detection | None, expires_at: datetime | None) -> Stamp:
    """``ioc_stamp(ioc_body(...))`` without building the body (a rerun stamps every held IOC):
    the metadata digest depends on the detection function alone, so it is computed once per
    function."""
    return Stamp(_ioc_meta(str(detection or indicator.detection)), epoch_of(indicator.expires or expires_at))


@functools.cache
def _ioc_meta(detection: str) -> int:
    return ioc_stamp({"DetectionFunction": detection, "Enabled": True}).meta  # as ioc_body sends them


def ioc_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a PATCH carries to make a held IOC equal to ``body``: its own fields, expiry included
    (``null`` when the feed no longer gives one), never its identity or definition."""
    return {**{name: body[name] for name in _IOC_META}, "ExpiresAt": body.get("ExpiresAt")}


def remote_indicator(entity: Mapping[str, Any]) -> RemoteIndicator | None:
    """An IOC entity as a RemoteIndicator (None for a type this importer never writes)."""
    stamp = ioc_stamp(entity)
    return remote_of(entity.get("Type"), entity.get("Value"), entity.get("Id"), _HASH_KINDS, stamp)


class TiClient:
    """Calls of the TI API under ``api_url``; JSON in, JSON out, errors typed by ``HttpClient``."""

    def __init__(self, http: HttpClient, api_url: str) -> None:
        self.http = http
        self.api_url = api_url
        self._base = api_url if api_url.endswith("/") else api_url + "/"

    def _url(self, path: str) -> str:
        return self._base + path

    async def _get(self, url: str, params: Mapping[str, str] | None, what: str) -> Any:
        return await self.http.retrier.call(lambda: self.http.request("GET", url, params=params, what=what))

    def _pages(self, path: str, params: Mapping[str, str], what: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a collection (``targets.common.odata_pages``), each read retried."""
        return odata_pages(lambda url, query: self._get(url, query, what), self._base, path, params, PAGE)

    # --- alert definitions ----------------------------------------------------------------------
    async def find_definitions(self, name: str) -> list[dict[str, Any]]:
        """Every definition whose Name is ``name`` (normally none or one), oldest first."""
        found = [
            d
            async for page in self._pages(
                "AlertDefinitions", {"$filter": f"Name eq {odata_string(name)}"}, "listing alert definitions"
            )
            for d in page
        ]
        return sorted(found, key=lambda d: int(d.get("Id", 0)))

    async def list_definitions(self) -> list[dict[str, Any]]:
        return [
            d async for page in self._pages("AlertDefinitions", {}, "listing alert definitions") for d in page
        ]

    async def create_definition(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST AlertDefinitions (one attempt)."""
        answer = await self.http.request(
            "POST", self._url("AlertDefinitions"), json_body=body, what="creating the alert definition"
        )
        return _entity(answer, "creating the alert definition")

    async def patch_definition(self, definition_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH AlertDefinitions(id) (one attempt; idempotent, so callers may simply retry)."""
        answer = await self.http.request(
            "PATCH",
            self._url(f"AlertDefinitions({definition_id})"),
            json_body=changes,
            what="updating the alert definition",
        )
        return _entity(answer, "updating the alert definition")

    async def delete_definition(self, definition_id: str) -> None:
        """DELETE AlertDefinitions(id), its IOCs with it (one attempt; a 404 means already gone)."""
        url = self._url(f"AlertDefinitions({int(definition_id)})")
        await self.http.request("DELETE", url, what="deleting an alert definition")

    # --- indicators of compromise ---------------------------------------------------------------
    def iocs_of(self, definition_id: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Every IOC of a definition, page by page (identity, own fields and expiry)."""
        params = {"$filter": f"AlertDefinitionId eq {int(definition_id)}", "$select": _IOC_LISTED}
        return self._pages("IndicatorsOfCompromise", params, "listing the definition's indicators")

    async def count_iocs(self, definition_id: str) -> int:
        answer = await self._get(
            self._url("IndicatorsOfCompromise"),
            {"$filter": f"AlertDefinitionId eq {int(definition_id)}", "$count": "true", "$top": "0"},
            "counting the definition's indicators",
        )
        count = answer.get("@odata.count") if isinstance(answer, dict) else None
        return int(count) if isinstance(count, int) else 0

    async def find_iocs(self, definition_id: str, ioc_type: str, value: str) -> list[dict[str, Any]]:
        """The IOCs of a definition with this Type and Value (a lookup after a lost answer)."""
        params = {
            "$filter": f"AlertDefinitionId eq {int(definition_id)} and Type eq {odata_string(ioc_type)} "
            f"and Value eq {odata_string(value)}",
            "$select": "Id,Type,Value",
        }
        return [
            i
            async for page in self._pages("IndicatorsOfCompromise", params, "looking up an indicator")
            for i in page
        ]

    async def create_ioc(self, body: Mapping[str, Any]) -> str:
        """POST IndicatorsOfCompromise (one attempt); the new IOC's id."""
        answer = await self.http.request(
            "POST", self._url("IndicatorsOfCompromise"), json_body=body, what="creating an indicator"
        )
        return str(_entity(answer, "creating an indicator").get("Id", ""))

    async def bulk_create_iocs(self, bodies: Sequence[Mapping[str, Any]]) -> list[str]:
        """POST IndicatorsOfCompromise/Actions.BulkUpload (one attempt, atomic); ids in order."""
        if len(bodies) > BULK_LIMIT:
            raise ValueError(f"a bulk upload takes at most {BULK_LIMIT} indicators")
        what = f"uploading {len(bodies)} indicators"
        answer = await self.http.request(
            "POST",
            self._url("IndicatorsOfCompromise/Actions.BulkUpload"),
            json_body={"iocs": list(bodies)},
            what=what,
        )
        created = answer.get("value") if isinstance(answer, dict) else None
        if not isinstance(created, list) or len(created) != len(bodies):
            return ["" for _ in bodies]  # the answer is undocumented: ids unknown, imports still done
        return [str(e.get("Id", "")) if isinstance(e, dict) else "" for e in created]

    async def patch_ioc(self, ioc_id: str, changes: Mapping[str, Any]) -> None:
        """PATCH IndicatorsOfCompromise(id) (one attempt; idempotent, so callers may simply retry)."""
        await self.http.request(
            "PATCH",
            self._url(f"IndicatorsOfCompromise({int(ioc_id)})"),
            json_body=changes,
            what=f"updating indicator {ioc_id}",
        )

    async def delete_ioc(self, ioc_id: str) -> None:
        """DELETE IndicatorsOfCompromise(id) (one attempt)."""
        await self.http.request(
            "DELETE", self._url(f"IndicatorsOfCompromise({int(ioc_id)})"), what=f"deleting indicator {ioc_id}"
        )


def _entity(answer: Any, what: str) -> dict[str, Any]:
    if not isinstance(answer, dict) or "Id" not in answer:
        # The write succeeded but we cannot tell what it created: treat it like a lost answer.
        raise AmbiguousWriteError(f"{what}: the answer carried no entity")
    return answer
