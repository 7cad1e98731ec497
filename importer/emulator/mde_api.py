"""The Defender for Endpoint Indicators API under ``/api/``: submit, import, list, delete, BatchDelete,
with the documented rate limits and the per-tenant indicator cap."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from importer.emulator.mde_model import (
    ENTITY_PROPERTIES,
    INDICATOR_TYPES,
    expiry_epoch,
    render,
    validate_indicator,
)
from importer.emulator.odata import Clause, Query, paginate, parse_query, select_fields
from importer.emulator.ratelimit import SlidingWindow, retry_after_header
from importer.emulator.replies import ApiError, json_response
from importer.emulator.state import EmulatorState
from importer.emulator.store import Entity, MdeTenant, value_key
from importer.emulator.tokens import Grant

__all__ = ["BATCH_LIMIT", "MAX_TOP", "handle_mde"]

BATCH_LIMIT = 500
MAX_TOP = 10000
_ROUTE = re.compile(r"indicators(?:/(?P<tail>[^/]+))?/?", re.IGNORECASE)
_FILTERABLE = frozenset(("indicatorValue", "indicatorType", "title", "action", "severity", "application",
                         "createdBy", "generateAlert", "id"))
_SELECTABLE = frozenset(ENTITY_PROPERTIES)
_INDICATOR_ID = re.compile(r"[0-9]{1,19}")  # ids are decimal strings ("994")


def _bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


async def _json(request: web.BaseRequest) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError:
        raise _bad("InvalidRequestBody", "The request body is not valid JSON.") from None


def _throttle(state: EmulatorState, tenant: str, call: str) -> None:
    """Count this call against the tenant's windows for its kind (``import``, ``batchdelete`` or any
    other call), or refuse it with 429 + Retry-After (seconds) and count it nowhere."""
    limits = state.limits_for(tenant)
    config = state.config
    windows: tuple[SlidingWindow, ...]
    if call == "import":
        windows = (limits.imports,)
        what = f"{config.mde_import_per_minute} import and BatchDelete calls per minute"
    elif call == "batchdelete":
        windows = (limits.imports, limits.batch_deletes_per_hour)
        what = (f"{config.mde_import_per_minute} import and BatchDelete calls per minute and "
                f"{config.mde_batch_delete_per_hour} BatchDelete calls per hour")
    else:
        windows = (limits.per_minute, limits.per_hour)
        what = f"{config.mde_calls_per_minute} calls per minute and {config.mde_calls_per_hour} per hour"
    now = config.clock()
    waits = [wait for wait in (window.retry_after(now) for window in windows) if wait is not None]
    if waits:
        raise ApiError(429, "TooManyRequests", f"API calls quota exceeded: at most {what}.",
                       headers={"Retry-After": retry_after_header(max(waits))})
    for window in windows:  # counted only when every window accepts it
        window.record(now)


def _cap_reached(state: EmulatorState, tenant: MdeTenant, now: float) -> bool:
    return tenant.active_count(now) >= state.config.mde_tenant_cap


def _upsert(state: EmulatorState, grant: Grant, tenant: MdeTenant, fields: Entity) -> Entity | None:
    """Create the indicator, or update the one with the same value and type; None if the cap is full.

    Only an indicator that is (or becomes) active needs room under the cap: an update of an active
    one always succeeds, while one that brings an expired indicator back to life counts as new.
    """
    clock = state.config.clock()
    stamp = state.now_iso()
    updated = fields.pop("lastUpdateTime", None) or stamp  # a client's own lastUpdateTime is kept
    expires_at = expiry_epoch(fields["expirationTime"])
    active = expires_at is None or expires_at > clock
    client = grant.client_id
    existing = tenant.find(fields["indicatorType"], fields["indicatorValue"])
    if existing is not None:
        if active and existing["id"] in tenant.expired and _cap_reached(state, tenant, clock):
            return None
        fields.pop("application", None)  # applies to new indicators only (the submit page)
        existing.update(fields)
        existing["lastUpdateTime"] = updated
        existing["lastUpdatedBy"] = client
        tenant.set_expiry(existing["id"], expires_at, clock)
        return existing
    if active and _cap_reached(state, tenant, clock):
        return None
    entity = tenant.add({**fields, "sourceType": "AadApp", "createdBySource": client, "createdBy": client,
                         "lastUpdatedBy": client, "creationTimeDateTimeUtc": stamp,
                         "lastUpdateTime": updated})
    tenant.set_expiry(entity["id"], expires_at, clock)
    return entity


def _cap_message(state: EmulatorState) -> str:
    return f"The tenant already holds the maximum of {state.config.mde_tenant_cap} active indicators."


def _submit(state: EmulatorState, grant: Grant, tenant: MdeTenant, body: Any) -> web.Response:
    entity = _upsert(state, grant, tenant, validate_indicator(body))
    if entity is None:
        raise _bad("IndicatorLimitExceeded", _cap_message(state))
    return json_response(render(entity))


def _import(state: EmulatorState, grant: Grant, tenant: MdeTenant, body: Any) -> web.Response:
    items = body.get("Indicators") if isinstance(body, dict) else None
    if items is None:
        raise _bad("MissingRequiredParameter", "The parameter 'Indicators' is required (case-sensitive).")
    if not isinstance(items, list) or not items:
        raise _bad("InvalidRequestBody", "'Indicators' must be a non-empty list.")
    if len(items) > BATCH_LIMIT:
        raise _bad("MaximumBatchSizeExceeded", f"Maximum batch size exceeded. Received: {len(items)}, "
                   f"allowed: {BATCH_LIMIT}.")
    results = []
    for item in items:
        value = item.get("indicatorValue") if isinstance(item, dict) else None
        try:
            entity = _upsert(state, grant, tenant, validate_indicator(item))
        except ApiError as error:
            results.append({"id": None, "indicator": value, "isFailed": True,
                            "failureReason": f"{error.code}: {error.message}"})
            continue
        if entity is None:
            results.append({"id": None, "indicator": value, "isFailed": True,
                            "failureReason": f"IndicatorLimitExceeded: {_cap_message(state)}"})
        else:
            results.append({"id": entity["id"], "indicator": value, "isFailed": False, "failureReason": None})
    return json_response({"value": results})


def _batch_delete(tenant: MdeTenant, body: Any) -> web.Response:
    """Delete every id, or none: 400 for a list that is empty, too long or holds an invalid id, 404
    if any id names no indicator (the page does not say whether the others go; here they stay)."""
    ids = body.get("IndicatorIds") if isinstance(body, dict) else None
    if ids is None:
        raise _bad("MissingRequiredParameter", "The parameter 'IndicatorIds' is required (case-sensitive).")
    if not isinstance(ids, list):
        raise _bad("InvalidRequestBody", "'IndicatorIds' must be a list of indicator ids.")
    if not ids:
        raise _bad("InvalidRequestBody", "'IndicatorIds' is empty: name at least one indicator id.")
    if len(ids) > BATCH_LIMIT:
        raise _bad("MaximumBatchSizeExceeded", f"Maximum batch size exceeded. Received: {len(ids)}, "
                   f"allowed: {BATCH_LIMIT}.")
    invalid = [i for i in ids if not isinstance(i, str) or _INDICATOR_ID.fullmatch(i) is None]
    if invalid:
        raise _bad("InvalidRequestBody", f"Invalid indicator id {json.dumps(invalid[0])[:50]}: an id is a "
                   "string of digits.")
    missing = [i for i in ids if i not in tenant.indicators]
    if missing:
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise ApiError(404, "NotFound", f"{len(missing)} of the {len(ids)} indicators were not found "
                       f"({shown}); none was deleted.")
    for indicator_id in ids:
        tenant.delete(indicator_id)
    return web.Response(status=204)


def _candidates(tenant: MdeTenant, clauses: list[Clause]) -> Iterable[Entity]:
    wanted = dict(clauses)
    value = wanted.get("indicatorValue")
    if isinstance(value, str):
        kind = wanted.get("indicatorType")
        types = [kind] if isinstance(kind, str) else INDICATOR_TYPES
        found = (tenant.by_value.get(value_key(t, value)) for t in types)
        return [tenant.indicators[i] for i in found if i is not None]
    if isinstance(wanted.get("id"), str | int):
        entity = tenant.indicators.get(str(wanted["id"]))
        return () if entity is None else (entity,)
    return tenant.indicators.values()


def _matches(entity: Entity, clauses: list[Clause]) -> bool:
    for prop, wanted in clauses:
        actual = entity.get(prop)
        if isinstance(actual, str) and isinstance(wanted, str | int) and not isinstance(wanted, bool):
            if actual.casefold() != str(wanted).casefold():
                return False
        elif actual != wanted:
            return False
    return True


def _list(request: web.BaseRequest, state: EmulatorState, tenant: MdeTenant, query: Query) -> web.Response:
    """The active indicators that match, a page at a time, each in the documented shape."""
    tenant.refresh(state.config.clock())
    expired = tenant.expired
    items = (e for e in _candidates(tenant, query.clauses)
             if e["id"] not in expired and _matches(e, query.clauses))
    page = paginate(items, query, MAX_TOP, request.url)
    body: dict[str, Any] = {"@odata.context": f"http://{request.host}/api/$metadata#Indicators",
                            "value": [select_fields(render(e), query.select) for e in page.items]}
    if page.next_link is not None:
        body["@odata.nextLink"] = page.next_link
    return json_response(body)


async def handle_mde(request: web.BaseRequest, state: EmulatorState, grant: Grant, rest: str) -> web.Response:
    """Serve one MDE request; ``rest`` is the path after ``/api/``."""
    match = _ROUTE.fullmatch(rest)
    if match is None:
        raise ApiError(404, "NotFound", f"No resource at {request.path}.")
    tail = match["tail"]
    action = tail.lower() if tail is not None else None
    method = request.method
    tenant = state.store.mde_tenant(grant.tenant)
    if action in ("import", "batchdelete"):
        if method != "POST":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {request.path}.")
        _throttle(state, grant.tenant, action)
        body = await _json(request)
        if action == "import":
            return _import(state, grant, tenant, body)
        return _batch_delete(tenant, body)
    _throttle(state, grant.tenant, "call")
    if tail is not None:
        if method != "DELETE":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {request.path}.")
        if not tenant.delete(tail):
            raise ApiError(404, "NotFound", f"Indicator {tail} was not found.")
        return web.Response(status=204)
    if method == "GET":
        return _list(request, state, tenant,
                     parse_query(request.query, _FILTERABLE, max_top=MAX_TOP, selectable=_SELECTABLE))
    if method == "POST":
        return _submit(state, grant, tenant, await _json(request))
    raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {request.path}.")
