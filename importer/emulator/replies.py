"""Building answers: JSON bodies, OData-style errors, and a dropped connection."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

__all__ = ["ApiError", "correlated_error_response", "drop_connection", "error_response", "json_response"]

# Built once: the headers of every JSON answer (setting ``content_type`` per answer parses it again).
_JSON_HEADERS = {"Content-Type": "application/json"}
_ODATA_HEADERS = {"Content-Type": "application/json", "OData-Version": "4.0"}
_encode = json.JSONEncoder(separators=(",", ":")).encode  # compact, the C encoder, made once


def json_response(body: Any, status: int = 200, *, odata: bool = False,
                  headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer serialised with the stdlib encoder (fast, and no dependency)."""
    base = _ODATA_HEADERS if odata else _JSON_HEADERS
    return web.Response(body=_encode(body).encode(), status=status,
                        headers={**base, **headers} if headers else base)


def error_response(status: int, code: str, message: str, *, target: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    """An error in the OData shape both APIs use: ``{"error": {"code", "message"[, "target"]}}``."""
    error: dict[str, str] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    return json_response({"error": error}, status, headers=headers)


def correlated_error_response(status: int, code: str, message: str,
                              headers: dict[str, str] | None = None) -> web.Response:
    """An MDE API error: its ``target`` is a correlation id, a fresh uuid for every answer."""
    return error_response(status, code, message, target=str(uuid.uuid4()), headers=headers)


class ApiError(Exception):
    """Raised inside a handler to answer with an OData error; caught by the dispatcher."""

    def __init__(self, status: int, code: str, message: str, *, target: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.headers = headers

    def response(self, *, correlated: bool = False) -> web.Response:
        """The answer; ``correlated`` (the MDE API) puts a correlation id in ``target`` instead."""
        if correlated:
            return correlated_error_response(self.status, self.code, self.message, self.headers)
        return error_response(self.status, self.code, self.message, target=self.target,
                              headers=self.headers)


def drop_connection(request: web.BaseRequest) -> web.Response:
    """Close the TCP connection without an answer; the returned placeholder is never sent.

    Returning (rather than raising) keeps aiohttp from logging a traceback for a fault we chose.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=204)
