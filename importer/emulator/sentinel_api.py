"""Microsoft Sentinel's routes: the STIX objects upload API (its per-app rate limit, per-object errors
and STIX versioning) here, ARM's ``queryIndicators`` in ``sentinel_arm``; both on the one host:port."""

from __future__ import annotations

import re

from aiohttp import web

from importer.emulator.ratelimit import retry_after_header
from importer.emulator.replies import ApiError, error_response, json_response
from importer.emulator.sentinel_arm import QUERY_ROUTE, handle_query
from importer.emulator.sentinel_requests import check_api_version, find_workspace, read_json
from importer.emulator.sentinel_validation import check_envelope, check_object
from importer.emulator.state import EmulatorState
from importer.emulator.tokens import Grant

__all__ = [
    "UPLOAD_API_VERSION",
    "UPLOAD_ROUTE",
    "handle_sentinel",
    "is_sentinel_path",
    "rate_limited",
    "sentinel_fault_shape",
]

UPLOAD_API_VERSION = "2024-02-01-preview"
UPLOAD_ROUTE = re.compile(r"/workspaces/(?P<workspace>[^/]+)/threat-intelligence-stix-objects:upload/?",
                          re.IGNORECASE)
_PREFIXES = ("/workspaces/", "/subscriptions/")


def is_sentinel_path(lower_path: str) -> bool:
    """Whether a (lower-cased) path belongs to the Sentinel routes: the upload API or ARM."""
    return lower_path.startswith(_PREFIXES)


def rate_limited(wait: float, headers: dict[str, str] | None = None) -> web.Response:
    """The upload API's 429: the wait in whole seconds (at least 1) in the message and ``Retry-After``."""
    seconds = retry_after_header(wait)
    message = f"Rate limit is exceeded. Try again in {seconds} seconds."
    return json_response({"statusCode": 429, "message": message}, 429,
                         headers={**(headers or {}), "Retry-After": seconds})


def sentinel_fault_shape(status: int, code: str, message: str,
                         headers: dict[str, str] | None = None) -> web.Response:
    """An injected fault on the upload route: a 429 in the upload API's own shape, others as errors."""
    if status == 429:
        retry_after = (headers or {}).get("Retry-After", "1")
        return rate_limited(float(retry_after) if retry_after.isdigit() else 1.0, headers)
    return error_response(status, code, message, headers=headers)


async def _upload(request: web.BaseRequest, state: EmulatorState, grant: Grant,
                  workspace_id: str) -> web.Response:
    """Count the call against the app's window, check it, store the valid objects (newer versions only).

    Every authenticated call counts, whatever its answer, except one refused by the limit itself:
    a client retrying sooner than told is refused again, one that waits gets through.
    """
    if request.method != "POST":
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on {request.path}.")
    wait = state.sentinel_window(grant.client_id).acquire(state.config.clock())
    if wait is not None:
        return rate_limited(wait)
    check_api_version(request, UPLOAD_API_VERSION)
    wanted = workspace_id.lower()
    workspace = find_workspace(state, grant.tenant, lambda w: w.workspace_id.lower() == wanted, workspace_id)
    source, objects = check_envelope(await read_json(request))
    store = state.store.sentinel_workspace(workspace.workspace_id)
    errors = []
    for index, obj in enumerate(objects):
        messages, modified = check_object(obj)
        if messages or modified is None:
            errors.append({"recordIndex": index, "errorMessages": messages})
            continue
        store.put(obj, source, modified, state.now_iso())  # an older or equal version: accepted, ignored
    if not errors:
        return web.Response(status=200)  # every object published: an empty body
    return json_response({"errors": errors}, 400 if len(errors) == len(objects) else 200)


async def handle_sentinel(request: web.BaseRequest, state: EmulatorState, grant: Grant) -> web.Response:
    """Serve one request on a Sentinel route (the token already checked for ARM's audience)."""
    match = UPLOAD_ROUTE.fullmatch(request.path)
    if match is not None:
        return await _upload(request, state, grant, match["workspace"])
    match = QUERY_ROUTE.fullmatch(request.path)
    if match is not None:
        return await handle_query(request, state, grant, match)
    raise ApiError(404, "NotFound", f"No resource at {request.path}.")
