"""The legacy custom threat-intelligence API under ``/V1.0/``: AlertDefinitions and IOCs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from aiohttp import web

from importer.emulator.odata import Clause, Literal, Query, paginate, parse_query, select_fields
from importer.emulator.replies import ApiError, json_response
from importer.emulator.state import EmulatorState
from importer.emulator.store import Entity, TiTenant, value_key
from importer.emulator.ti_model import IOC_TYPES, bad_request, validate_definition, validate_ioc
from importer.emulator.tokens import Grant

__all__ = ["BULK_LIMIT", "handle_ti"]

BULK_LIMIT = 5000
_ROUTE = re.compile(
    r"(?P<set>alertdefinitions|indicatorsofcompromise)"
    r"(?:\((?P<id>\d{1,18})\))?"
    r"(?:/(?P<action>actions\.deleteiocs|actions\.bulkupload|\$count))?/?"
)
# The routes almost every request takes, found without the regex: (set, id, action).
_PLAIN_ROUTES: dict[str, tuple[str, None, str | None]] = {
    "indicatorsofcompromise": ("indicatorsofcompromise", None, None),
    "indicatorsofcompromise/actions.bulkupload": ("indicatorsofcompromise", None, "actions.bulkupload"),
    "alertdefinitions": ("alertdefinitions", None, None),
}
_DEFINITION_FILTERS = frozenset(("Id", "Name", "Title", "Severity", "Category", "Enabled"))
_IOC_FILTERS = frozenset(("Id", "Type", "Value", "DetectionFunction", "Enabled", "AlertDefinitionId",
                          "AlertDefinition/Id"))
_DEFINITION_PROPS = frozenset(("Id", "Name", "Title", "Severity", "Category", "InternalDescription",
                               "UxDescription", "RecommendedAction", "Enabled", "CreatedAt", "CreatedBy",
                               "LastModifiedAt", "LastModifiedBy"))
_IOC_PROPS = frozenset(("Id", "Type", "Value", "DetectionFunction", "Enabled", "ExpiresAt",
                        "AlertDefinitionId", "CreatedAt", "CreatedBy", "LastModifiedAt", "LastModifiedBy"))


def _not_found(what: str, entity_id: int) -> ApiError:
    return ApiError(404, "NotFound", f"{what}({entity_id}) does not exist.")


def _method_not_allowed(request: web.BaseRequest) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on {request.path}.")


def _insufficient_storage(message: str) -> ApiError:
    return ApiError(507, "InsufficientStorage", message)


async def _json_body(request: web.BaseRequest) -> Any:
    # The media type without parameters; cheaper than request.content_type, which parses them all.
    media_type = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "UnsupportedMediaType", "The request body must be application/json.")
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError:
        raise bad_request("The request body is not valid JSON.") from None


def _context(request: web.BaseRequest, fragment: str) -> str:
    # Built from the Host header rather than request.url: yarl URL building costs more than the handler.
    return f"http://{request.host}/V1.0/$metadata#{fragment}"


def _matches(entity: Entity, clauses: list[Clause]) -> bool:
    for prop, wanted in clauses:
        actual = entity.get("AlertDefinitionId" if prop == "AlertDefinition/Id" else prop)
        if isinstance(actual, str) and isinstance(wanted, str):
            # The service compared strings case-insensitively (its SQL collation); so do we.
            if actual.casefold() != wanted.casefold():
                return False
        elif isinstance(actual, bool) or isinstance(wanted, bool):
            if actual is not wanted:
                return False
        elif actual != wanted:
            return False
    return True


def _definition_candidates(tenant: TiTenant, clauses: list[Clause]) -> Iterable[Entity]:
    wanted = dict(clauses)
    if isinstance(wanted.get("Id"), int):
        found = tenant.definitions.get(wanted["Id"])  # type: ignore[arg-type]
        return () if found is None else (found,)
    if isinstance(wanted.get("Name"), str):
        ids = tenant.by_name.get(str(wanted["Name"]).casefold(), {})
        return [tenant.definitions[i] for i in ids]
    return tenant.definitions.values()


def _ioc_candidates(tenant: TiTenant, clauses: list[Clause]) -> Iterable[Entity]:
    wanted: dict[str, Literal] = dict(clauses)
    if "AlertDefinition/Id" in wanted:
        wanted["AlertDefinitionId"] = wanted["AlertDefinition/Id"]
    if isinstance(wanted.get("Id"), int):
        found = tenant.iocs.get(wanted["Id"])  # type: ignore[arg-type]
        return () if found is None else (found,)
    value = wanted.get("Value")
    if isinstance(value, str):
        ioc_type = wanted.get("Type")
        types = [t for t in IOC_TYPES if not isinstance(ioc_type, str) or t.casefold() == ioc_type.casefold()]
        return [tenant.iocs[i] for t in types for i in tenant.iocs_by_value.get(value_key(t, value), {})]
    definition_id = wanted.get("AlertDefinitionId")
    if isinstance(definition_id, int) and not isinstance(definition_id, bool):
        return [tenant.iocs[i] for i in tenant.iocs_by_definition.get(definition_id, {})]
    return tenant.iocs.values()


def _filtered(candidates: Iterable[Entity], clauses: list[Clause]) -> Iterator[Entity]:
    if not clauses:
        return iter(candidates)
    return (e for e in candidates if _matches(e, clauses))


def _collection(request: web.BaseRequest, state: EmulatorState, set_name: str, candidates: Iterable[Entity],
                query: Query) -> web.Response:
    body: dict[str, Any] = {"@odata.context": _context(request, set_name)}
    if query.count:
        body["@odata.count"] = sum(1 for _ in _filtered(candidates, query.clauses))
    page = paginate(_filtered(candidates, query.clauses), query, state.config.page_size, request.url)
    body["value"] = [select_fields(e, query.select) for e in page.items]
    if page.next_link is not None:
        body["@odata.nextLink"] = page.next_link
    return json_response(body, odata=True)


def _entity(request: web.BaseRequest, set_name: str, entity: Entity, status: int = 200) -> web.Response:
    return json_response({"@odata.context": _context(request, f"{set_name}/$entity"), **entity}, status,
                         odata=True)


def _audit(
    state: EmulatorState, grant: Grant, entity: Entity, *, created: bool, now: str | None = None
) -> None:
    now = state.now_iso() if now is None else now
    if created:
        entity["CreatedAt"] = now
        entity["CreatedBy"] = grant.client_id
    entity["LastModifiedAt"] = now
    entity["LastModifiedBy"] = grant.client_id


def _check_definition_quota(state: EmulatorState, tenant: TiTenant, adding: int) -> None:
    limit = state.config.max_alert_definitions
    if limit is not None and len(tenant.definitions) + adding > limit:
        raise _insufficient_storage(f"The tenant's quota of {limit} alert definitions is full.")


def _check_ioc_quota(state: EmulatorState, tenant: TiTenant, adding: int, adding_non_equals: int) -> None:
    limit = state.config.max_iocs
    if limit is not None and len(tenant.iocs) + adding > limit:
        raise _insufficient_storage(f"The tenant's quota of {limit} indicators of compromise is full.")
    limit = state.config.max_non_equals_iocs
    if limit is not None and adding_non_equals and tenant.non_equals + adding_non_equals > limit:
        raise _insufficient_storage(
            f"The tenant's quota of {limit} indicators with a DetectionFunction other than Equals is full.")


def _bound_definition(tenant: TiTenant, definition_id: int) -> int:
    if definition_id not in tenant.definitions:
        raise bad_request(f"AlertDefinition@odata.bind names AlertDefinitions({definition_id}), "
                          "which does not exist.", "AlertDefinition@odata.bind")
    return definition_id


def _bulk_items(body: Any, key: str, validate: Callable[[Any], Entity]) -> list[Entity]:
    """A bulk upload's ``key`` list, each item validated: the first bad one fails the whole upload
    (it is atomic), named by its position."""
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise bad_request(f"The request body must be {{\"{key}\": [...]}}.", key)
    if len(items) > BULK_LIMIT:
        raise bad_request(f"A bulk upload takes at most {BULK_LIMIT} entities; got {len(items)}.", key)
    validated = []
    for position, item in enumerate(items):
        try:
            validated.append(validate(item))
        except ApiError as error:
            error.message = f"{key}[{position}]: {error.message}"
            raise
    return validated


async def _definitions(request: web.BaseRequest, state: EmulatorState, grant: Grant, tenant: TiTenant,
                       *, entity_id: int | None, action: str | None) -> web.Response:
    method = request.method
    set_name = "AlertDefinitions"
    if action == "actions.bulkupload":
        if entity_id is not None or method != "POST":
            raise _method_not_allowed(request)
        validated = _bulk_items(await _json_body(request), "alertDefinitions", _new_definition)
        _check_definition_quota(state, tenant, len(validated))
        created = []
        for fields in validated:
            _audit(state, grant, fields, created=True)
            created.append(tenant.add_definition(fields))
        return json_response({"@odata.context": _context(request, set_name), "value": created}, odata=True)
    if action == "actions.deleteiocs":
        if entity_id is None or method != "POST":
            raise _method_not_allowed(request)
        if entity_id not in tenant.definitions:
            raise _not_found(set_name, entity_id)
        tenant.delete_iocs_of(entity_id)
        return web.Response(status=204)
    if action == "$count":
        if entity_id is not None or method != "GET":
            raise _method_not_allowed(request)
        query = parse_query(request.query, _DEFINITION_FILTERS)
        count = sum(1 for _ in _filtered(_definition_candidates(tenant, query.clauses), query.clauses))
        return web.Response(text=str(count), content_type="text/plain")
    if entity_id is None:
        if method == "GET":
            query = parse_query(request.query, _DEFINITION_FILTERS, selectable=_DEFINITION_PROPS)
            return _collection(request, state, set_name, _definition_candidates(tenant, query.clauses), query)
        if method == "POST":
            fields = validate_definition(await _json_body(request), partial=False)
            _check_definition_quota(state, tenant, 1)
            _audit(state, grant, fields, created=True)
            return _entity(request, set_name, tenant.add_definition(fields), 201)
        raise _method_not_allowed(request)
    entity = tenant.definitions.get(entity_id)
    if entity is None:
        raise _not_found(set_name, entity_id)
    if method == "GET":
        return _entity(request, set_name, entity)
    if method == "PATCH":
        fields = validate_definition(await _json_body(request), partial=True)
        if "Name" in fields:
            tenant.rename_definition(entity_id, fields.pop("Name"))
        entity.update(fields)
        _audit(state, grant, entity, created=False)
        return _entity(request, set_name, entity)
    if method == "DELETE":
        tenant.delete_definition(entity_id)
        return web.Response(status=204)
    raise _method_not_allowed(request)


def _new_definition(item: Any) -> Entity:
    return validate_definition(item, partial=False)


def _new_ioc(item: Any, tenant: TiTenant) -> Entity:
    fields, definition_id = validate_ioc(item)
    assert definition_id is not None  # validate_ioc requires the bind on create
    fields["AlertDefinitionId"] = _bound_definition(tenant, definition_id)
    return fields


async def _iocs(request: web.BaseRequest, state: EmulatorState, grant: Grant, tenant: TiTenant,
                *, entity_id: int | None, action: str | None) -> web.Response:
    method = request.method
    set_name = "IndicatorsOfCompromise"
    if action == "actions.bulkupload":
        if entity_id is not None or method != "POST":
            raise _method_not_allowed(request)
        validated = _bulk_items(await _json_body(request), "iocs", lambda item: _new_ioc(item, tenant))
        non_equals = sum(1 for f in validated if f["DetectionFunction"] != "Equals")
        _check_ioc_quota(state, tenant, len(validated), non_equals)
        created = []
        now = state.now_iso()  # one atomic upload, one instant (and not a clock read per item)
        for fields in validated:
            _audit(state, grant, fields, created=True, now=now)
            created.append(tenant.add_ioc(fields))
        return json_response({"@odata.context": _context(request, set_name), "value": created}, odata=True)
    if action == "$count":
        if entity_id is not None or method != "GET":
            raise _method_not_allowed(request)
        query = parse_query(request.query, _IOC_FILTERS)
        count = sum(1 for _ in _filtered(_ioc_candidates(tenant, query.clauses), query.clauses))
        return web.Response(text=str(count), content_type="text/plain")
    if action is not None:
        raise ApiError(404, "NotFound", f"{request.path} does not exist.")
    if entity_id is None:
        if method == "GET":
            query = parse_query(request.query, _IOC_FILTERS, selectable=_IOC_PROPS)
            return _collection(request, state, set_name, _ioc_candidates(tenant, query.clauses), query)
        if method == "POST":
            fields = _new_ioc(await _json_body(request), tenant)
            _check_ioc_quota(state, tenant, 1, int(fields["DetectionFunction"] != "Equals"))
            _audit(state, grant, fields, created=True)
            return _entity(request, set_name, tenant.add_ioc(fields), 201)
        raise _method_not_allowed(request)
    entity = tenant.iocs.get(entity_id)
    if entity is None:
        raise _not_found(set_name, entity_id)
    if method == "GET":
        return _entity(request, set_name, entity)
    if method == "PATCH":
        fields, definition_id = validate_ioc(await _json_body(request), current=entity)
        fields["AlertDefinitionId"] = (entity["AlertDefinitionId"] if definition_id is None
                                       else _bound_definition(tenant, definition_id))
        was_equals = entity["DetectionFunction"] == "Equals"
        _check_ioc_quota(state, tenant, 0, int(was_equals and fields["DetectionFunction"] != "Equals"))
        updated = {**entity, **fields}
        _audit(state, grant, updated, created=False)
        tenant.replace_ioc(entity_id, updated)
        return _entity(request, set_name, updated)
    if method == "DELETE":
        tenant.delete_ioc(entity_id)
        return web.Response(status=204)
    raise _method_not_allowed(request)


async def handle_ti(request: web.BaseRequest, state: EmulatorState, grant: Grant, rest: str) -> web.Response:
    """Serve one TI request; ``rest`` is the lower-cased path after ``/v1.0/``."""
    plain = _PLAIN_ROUTES.get(rest)
    if plain is not None:
        set_name, entity_id, action = plain
    else:
        match = _ROUTE.fullmatch(rest)
        if match is None:
            raise ApiError(404, "NotFound", f"No resource at {request.path}.")
        set_name, action = match["set"], match["action"]
        entity_id = int(match["id"]) if match["id"] else None
    tenant = state.store.ti_tenant(grant.tenant)
    if set_name == "alertdefinitions":
        return await _definitions(request, state, grant, tenant, entity_id=entity_id, action=action)
    return await _iocs(request, state, grant, tenant, entity_id=entity_id, action=action)
