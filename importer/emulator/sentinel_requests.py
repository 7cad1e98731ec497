"""What both Sentinel routes check first: the ``api-version``, a JSON body, and which of the caller's
workspaces the path names (one of another tenant does not exist for it: 404, never 403)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from importer.emulator.config import SentinelWorkspace
from importer.emulator.replies import ApiError
from importer.emulator.state import EmulatorState

__all__ = ["check_api_version", "find_workspace", "read_json"]


def check_api_version(request: web.BaseRequest, expected: str) -> None:
    """Refuse (400, in ARM's words) a request without ``api-version`` or with another version."""
    given = request.query.get("api-version")
    if not given:
        raise ApiError(400, "MissingApiVersionParameter",
                       "The api-version query parameter (?api-version=) is required for all requests.")
    if given != expected:
        raise ApiError(400, "InvalidApiVersionParameter",
                       f"The api-version '{given[:40]}' is invalid. The supported version is '{expected}'.")


async def read_json(request: web.BaseRequest, *, empty: Any = None) -> Any:
    """The request's JSON body; ``empty`` for no body at all when given, else 400 as for bad JSON."""
    raw = await request.read()
    if not raw.strip() and empty is not None:
        return empty
    try:
        return json.loads(raw)
    except ValueError:  # UnicodeDecodeError included
        raise ApiError(400, "InvalidRequestBody", "The request body is not valid JSON.") from None


def find_workspace(state: EmulatorState, tenant: str, matches: Callable[[SentinelWorkspace], bool],
                   described: str, code: str = "WorkspaceNotFound") -> SentinelWorkspace:
    """The tenant's workspace that ``matches``, or 404 naming ``described`` (as the caller named it)."""
    for workspace in state.config.sentinel_workspaces:
        if workspace.tenant == tenant and matches(workspace):
            return workspace
    raise ApiError(404, code, f"The workspace {described[:200]} was not found.")
