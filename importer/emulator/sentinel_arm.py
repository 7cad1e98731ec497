"""ARM's ``queryIndicators``: a workspace's STIX indicators read back a page at a time, in the
Resource Manager shape, filtered by source, keywords, ids, revocation and expiry.

Pages follow the STIX id order, so a page boundary is a STIX id: the skip token is that id,
base64url-encoded, and the next page starts after it however objects arrived in between.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from aiohttp import web

from importer.emulator.config import SentinelWorkspace
from importer.emulator.replies import ApiError, json_response
from importer.emulator.sentinel_requests import check_api_version, find_workspace, read_json
from importer.emulator.sentinel_store import StixRecord, WorkspaceObjects
from importer.emulator.sentinel_validation import is_stix_id, parse_timestamp
from importer.emulator.state import EmulatorState
from importer.emulator.tokens import Grant

__all__ = ["MAX_PAGE_SIZE", "QUERY_API_VERSION", "QUERY_ROUTE", "arm_workspace_path", "handle_query"]

QUERY_API_VERSION = "2024-03-01"
MAX_PAGE_SIZE = 100
QUERY_ROUTE = re.compile(
    r"/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)/providers/"
    r"Microsoft\.OperationalInsights/workspaces/(?P<name>[^/]+)/providers/Microsoft\.SecurityInsights/"
    r"threatIntelligence/main/queryIndicators/?",
    re.IGNORECASE,
)
_ETAGS = uuid.UUID("0e7f4c2a-93d1-4b8e-a5f6-1c2d3e4f5a6b")


def arm_workspace_path(workspace: SentinelWorkspace) -> str:
    return (f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}"
            f"/providers/Microsoft.OperationalInsights/workspaces/{workspace.name}")


@dataclass(frozen=True)
class _Criteria:
    """The request's filtering criteria, checked."""

    page_size: int
    sources: frozenset[str] | None  # casefolded
    keywords: str | None  # casefolded
    ids: frozenset[str] | None  # casefolded ARM names or STIX ids
    include_disabled: bool
    min_valid_until: datetime | None
    after: str | None  # the last STIX id of the previous page


def _bad(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _strings(body: dict[str, Any], key: str) -> frozenset[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad(f"'{key}' must be a list of strings.")
    return frozenset(item.casefold() for item in value)


def _skip_token(body: dict[str, Any], request: web.BaseRequest) -> str | None:
    """The STIX id a page starts after, from ``skipToken`` in the body or ``$skipToken`` in the URL."""
    in_body, in_url = body.get("skipToken"), request.query.get("$skipToken")
    if in_body is not None and not isinstance(in_body, str):
        raise _bad("'skipToken' must be a string.")
    if in_body and in_url and in_body != in_url:
        raise _bad("'skipToken' in the body and '$skipToken' in the URL differ: send one.")
    token = in_body or in_url
    if not token:
        return None
    try:
        after = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        after = ""
    if not is_stix_id(after):
        raise _bad("'skipToken' is not a token this service issued.")
    return after


def _criteria(body: Any, request: web.BaseRequest) -> _Criteria:
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object of filtering criteria.")
    size = body.get("pageSize", MAX_PAGE_SIZE)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_PAGE_SIZE:
        raise _bad(f"'pageSize' must be an integer from 1 to {MAX_PAGE_SIZE}.")
    keywords = body.get("keywords")
    if keywords is not None and not isinstance(keywords, str):
        raise _bad("'keywords' must be a string.")
    include = body.get("includeDisabled", False)
    if not isinstance(include, bool):
        raise _bad("'includeDisabled' must be true or false.")
    raw_min = body.get("minValidUntil")
    min_valid_until = None if raw_min is None else parse_timestamp(raw_min)
    if raw_min is not None and min_valid_until is None:
        raise _bad("'minValidUntil' must be an RFC 3339 timestamp.")
    return _Criteria(size, _strings(body, "sources"), keywords.casefold() if keywords else None,
                     _strings(body, "ids"), include, min_valid_until, _skip_token(body, request))


def _matches(record: StixRecord, criteria: _Criteria) -> bool:
    """Whether an indicator passes every criterion but ``ids`` (which picks the candidates)."""
    obj = record.object
    if record.revoked and not criteria.include_disabled:
        return False
    if criteria.sources is not None and record.source.casefold() not in criteria.sources:
        return False
    if criteria.min_valid_until is not None:
        valid_until = parse_timestamp(obj.get("valid_until"))
        if valid_until is not None and valid_until < criteria.min_valid_until:
            return False
    if criteria.keywords is not None:
        texts = [obj.get("pattern"), obj.get("name"), obj.get("description"), *(obj.get("labels") or ())]
        return any(isinstance(t, str) and criteria.keywords in t.casefold() for t in texts)
    return True


def _candidates(objects: WorkspaceObjects, wanted: frozenset[str]) -> list[str]:
    """The indicators ``ids`` names, by STIX id or ARM name, in STIX id order: looked up, not walked."""
    found = {objects.by_name.get(key, key) for key in wanted}
    return sorted(key for key in found if key in objects.objects and objects.objects[key].is_indicator)


def _select(objects: WorkspaceObjects, criteria: _Criteria) -> Iterator[StixRecord]:
    """The matching indicators after the skip token, in STIX id order."""
    ids = objects.indicator_ids if criteria.ids is None else _candidates(objects, criteria.ids)
    start = 0 if criteria.after is None else bisect.bisect_right(ids, criteria.after.lower())
    for index in range(start, len(ids)):  # consumed at once, no await between: the list holds still
        record = objects.objects[ids[index]]
        if _matches(record, criteria):
            yield record


def _camel(items: Any, keys: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    return [{keys.get(str(k), str(k)): v for k, v in item.items()}
            for item in items if isinstance(item, dict)]


def _render(workspace: SentinelWorkspace, record: StixRecord) -> dict[str, Any]:
    """One indicator as ARM lists it: ``externalId`` is the STIX id, ``name`` an opaque GUID."""
    obj = record.object
    labels = list(obj.get("labels") or [])
    properties = {
        "pattern": obj["pattern"], "patternType": obj["pattern_type"], "source": record.source,
        "displayName": obj.get("name"), "description": obj.get("description"),
        "confidence": obj.get("confidence"), "labels": labels, "threatIntelligenceTags": labels,
        "validFrom": obj.get("valid_from"), "validUntil": obj.get("valid_until"), "revoked": record.revoked,
        "externalId": obj["id"], "created": obj.get("created"), "modified": obj.get("modified"),
        "lastUpdatedTimeUtc": record.stored_at, "createdByRef": obj.get("created_by_ref"),
        "indicatorTypes": list(obj.get("indicator_types") or []),
        "killChainPhases": _camel(obj.get("kill_chain_phases"),
                                  {"kill_chain_name": "killChainName", "phase_name": "phaseName"}),
        "externalReferences": _camel(obj.get("external_references"),
                                     {"source_name": "sourceName", "external_id": "externalId"}),
        "objectMarkingRefs": list(obj.get("object_marking_refs") or []),
        "language": obj.get("lang"),
    }
    return {
        "id": f"{arm_workspace_path(workspace)}/providers/Microsoft.SecurityInsights/threatIntelligence/main"
              f"/indicators/{record.name}",
        "name": record.name,
        "etag": f'"{uuid.uuid5(_ETAGS, record.stored_at + obj["id"])}"',  # changes with each new version
        "type": "Microsoft.SecurityInsights/threatIntelligence",
        "kind": "indicator",
        "properties": properties,
    }


async def handle_query(request: web.BaseRequest, state: EmulatorState, grant: Grant,
                       match: re.Match[str]) -> web.Response:
    """``POST .../threatIntelligence/main/queryIndicators``: one page and, if more match, ``nextLink``."""
    if request.method != "POST":
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on {request.path}.")
    check_api_version(request, QUERY_API_VERSION)
    wanted = tuple(match[k].lower() for k in ("subscription", "group", "name"))  # ARM: case-insensitive
    workspace = find_workspace(
        state, grant.tenant,
        lambda w: (w.subscription_id.lower(), w.resource_group.lower(), w.name.lower()) == wanted,
        f"'{match['name']}' of resource group '{match['group']}'", "ResourceNotFound")
    criteria = _criteria(await read_json(request, empty={}), request)
    objects = state.store.sentinel_workspace(workspace.workspace_id)
    found = _select(objects, criteria)
    page = list(islice(found, criteria.page_size))
    body: dict[str, Any] = {"value": [_render(workspace, record) for record in page]}
    if page and next(found, None) is not None:
        last = page[-1].object["id"].lower()
        token = base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")
        body["nextLink"] = (f"{request.scheme}://{request.host}{request.path}"
                            f"?api-version={QUERY_API_VERSION}&$skipToken={token}")
    return json_response(body)
