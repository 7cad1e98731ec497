"""The Defender for Endpoint Indicators API under ``/api/``: submit, import, list, delete, BatchDelete,
with the documented rate limits and the per-tenant indicator cap."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from importer.emulator.mde_model import INDICATOR_TYPES, validate_indicator
from importer.emulator.odata import Clause, Query, paginate, parse_query
from importer.emulator.ratelimit import retry_after_header
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


def _bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


async def _json(request: web.BaseRequest) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError:
        raise _bad("InvalidRequestBody", "The request body is not valid JSON.") from None


def _throttle(state: EmulatorState, tenant: str, *, batch: bool) -> None:
    """Count this call against the tenant's windows, or refuse it with 429 + Retry-After (seconds)."""
    limits = state.limits_for(tenant)
    now = state.config.clock()
    if batch:
        wait = limits.imports.acquire(now)
        what = f"{state.config.mde_import_per_minute} import/BatchDelete calls per minute"
    else:
        minute = limits.per_minute.retry_after(now)
        hour = limits.per_hour.retry_after(now)
        waits = [w for w in (minute, hour) if w is not None]
        wait = max(waits) if waits else None
        if wait is None:  # count the call only when both windows accept it
            limits.per_minute.record(now)
            limits.per_hour.record(now)
        what = (f"{state.config.mde_calls_per_minute} calls per minute and "
                f"{state.config.mde_calls_per_hour} per hour")
    if wait is not None:
        raise ApiError(429, "TooManyRequests", f"API calls quota exceeded: at most {what}.",
                       headers={"Retry-After": retry_after_header(wait)})


def _cap_reached(state: EmulatorState, tenant: MdeTenant) -> bool:
    return len(tenant.indicators) >= state.config.mde_tenant_cap


def _upsert(state: EmulatorState, grant: Grant, tenant: MdeTenant, fields: Entity) -> Entity | None:
    """Create the indicator, or update the one with the same value and type; None if the cap is full."""
    now = state.now_iso()
    existing = tenant.find(fields["indicatorType"], fields["indicatorValue"])
    if existing is not None:
        existing.update(fields)
        existing["lastUpdateTime"] = now
        existing["lastUpdatedBy"] = grant.client_id
        return existing
    if _cap_reached(state, tenant):
        return None
    client = grant.client_id
    return tenant.add({**fields, "source": client, "sourceType": "AadApp", "createdBy": client,
                       "creationTimeDateTimeUtc": now, "lastUpdateTime": now, "lastUpdatedBy": client})


def _cap_message(state: EmulatorState) -> str:
    return f"The tenant already holds the maximum of {state.config.mde_tenant_cap} indicators."


def _submit(state: EmulatorState, grant: Grant, tenant: MdeTenant, body: Any) -> web.Response:
    entity = _upsert(state, grant, tenant, validate_indicator(body))
    if entity is None:
        raise _bad("IndicatorLimitExceeded", _cap_message(state))
    return json_response(entity)


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
    ids = body.get("IndicatorIds") if isinstance(body, dict) else None
    if ids is None:
        raise _bad("MissingRequiredParameter", "The parameter 'IndicatorIds' is required (case-sensitive).")
    if not isinstance(ids, list) or not all(type(i) in (str, int) for i in ids):
        raise _bad("InvalidRequestBody", "'IndicatorIds' must be a list of indicator ids.")
    if len(ids) > BATCH_LIMIT:
        raise _bad("MaximumBatchSizeExceeded", f"Maximum batch size exceeded. Received: {len(ids)}, "
                   f"allowed: {BATCH_LIMIT}.")
    for indicator_id in ids:
        tenant.delete(str(indicator_id))
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


def _list(request: web.BaseRequest, tenant: MdeTenant, query: Query) -> web.Response:
    items = (e for e in _candidates(tenant, query.clauses) if _matches(e, query.clauses))
    page = paginate(items, query, MAX_TOP, request.url)
    body: dict[str, Any] = {"@odata.context": f"http://{request.host}/api/$metadata#Indicators",
                            "value": page.items}
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
        _throttle(state, grant.tenant, batch=True)
        body = await _json(request)
        if action == "import":
            return _import(state, grant, tenant, body)
        return _batch_delete(tenant, body)
    _throttle(state, grant.tenant, batch=False)
    if tail is not None:
        if method != "DELETE":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {request.path}.")
        if not tenant.delete(tail):
            raise ApiError(404, "NotFound", f"Indicator {tail} was not found.")
        return web.Response(status=204)
    if method == "GET":
        return _list(request, tenant, parse_query(request.query, _FILTERABLE, max_top=MAX_TOP))
    if method == "POST":
        return _submit(state, grant, tenant, await _json(request))
    raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {request.path}.")
