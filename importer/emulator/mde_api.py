"""The Defender for Endpoint Indicators API under ``/api/`` (placeholder until implemented)."""

from __future__ import annotations

from aiohttp import web

from importer.emulator.replies import ApiError
from importer.emulator.state import EmulatorState
from importer.emulator.tokens import Grant

__all__ = ["handle_mde"]


async def handle_mde(request: web.Request, state: EmulatorState, grant: Grant, rest: str) -> web.Response:
    del state, grant, rest
    raise ApiError(404, "NotFound", f"No resource at {request.path}.")
