"""The emulator's HTTP server: routing, fault injection around handlers, and ``running_emulator``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from importer.emulator.config import EmulatorConfig, Faults, SentinelWorkspace
from importer.emulator.faults import DROP, ErrorShape, FaultInjector, hold_until
from importer.emulator.inspection import snapshot
from importer.emulator.mde_api import handle_mde
from importer.emulator.replies import (
    ApiError,
    correlated_error_response,
    drop_connection,
    error_response,
    json_response,
)
from importer.emulator.sentinel_api import (
    UPLOAD_API_VERSION,
    UPLOAD_ROUTE,
    handle_sentinel,
    is_sentinel_path,
    sentinel_fault_shape,
)
from importer.emulator.sentinel_arm import QUERY_API_VERSION, arm_workspace_path
from importer.emulator.state import EmulatorState
from importer.emulator.ti_api import handle_ti
from importer.emulator.token_endpoint import aad_error, issue_token
from importer.emulator.tokens import MDE, SENTINEL, TI

__all__ = ["Emulator", "build_server", "running_emulator"]

_TOKEN_ROUTE = re.compile(r"/(?P<tenant>[^/]+)/oauth2/(?P<v2>v2\.0/)?token/?", re.IGNORECASE)
_MAX_BODY = 64 * 1024 * 1024  # a bulk upload of 5000 IOCs is a few MB


async def _token(request: web.BaseRequest, state: EmulatorState, tenant: str, version: int) -> web.Response:
    if request.method != "POST":
        return aad_error(405, "invalid_request", 900561,
                         "The endpoint only accepts POST requests.")
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    lifetime = state.token_faults.faults.token_lifetime or state.config.token_lifetime
    own = (state.base_url.lower(), f"{request.scheme}://{request.host}".lower())
    return issue_token(fields, tenant=tenant, version=version, clients=state.config.clients,
                       tokens=state.tokens, lifetime=lifetime, own_urls=own,
                       authorization=request.headers.get("Authorization"))


async def _inspect(request: web.BaseRequest, state: EmulatorState, rest: str) -> web.Response:
    if rest == "state" and request.method == "GET":
        return json_response(snapshot(state))
    if rest == "reset" and request.method == "POST":
        state.reset()
        return web.Response(status=204)
    return error_response(404, "NotFound", f"No emulator control at {request.path}.")


async def _dispatch(request: web.BaseRequest, state: EmulatorState) -> web.StreamResponse:
    path = request.path
    lower = path.lower()
    if lower.startswith("/_emulator/"):
        return await _inspect(request, state, lower[len("/_emulator/"):].rstrip("/"))
    injector: FaultInjector
    mde = lower.startswith("/api/")  # its errors carry a correlation id in ``target``
    sentinel = is_sentinel_path(lower)
    if mde or sentinel or lower.startswith("/v1.0/"):
        injector = state.api_faults
    else:
        match = _TOKEN_ROUTE.fullmatch(path)
        if match is None:
            response = error_response(404, "NotFound", f"No resource at {path}.")
            state.requests_by_status[404] += 1
            return response
        injector = state.token_faults
    due = 0.0
    if injector.active:
        early, due = injector.admit(_arrival(request), _fault_shape(path, mde=mde))
        if early is not None:
            await hold_until(due)
            if early is DROP:
                return drop_connection(request)
            state.requests_by_status[early.status] += 1
            return early
    try:
        if injector is state.token_faults:
            assert match is not None
            response = await _token(request, state, match["tenant"], 2 if match["v2"] else 1)
        elif lower.startswith("/v1.0/"):
            grant = state.tokens.authorize(request, TI)
            response = await handle_ti(request, state, grant, lower[len("/v1.0/"):])
        elif sentinel:
            grant = state.tokens.authorize(request, SENTINEL)
            response = await handle_sentinel(request, state, grant)
        else:
            grant = state.tokens.authorize(request, MDE)
            response = await handle_mde(request, state, grant, path[len("/api/"):])
    except ApiError as error:
        response = error.response(correlated=mde)
    except ConnectionResetError:
        # The client went away mid-body (killed, or gave up): nobody to answer, nothing to log.
        return drop_connection(request)
    if injector.active:
        lost = response.status < 300 and injector.lose_after_write(request)
        await hold_until(due)
        if lost:
            return drop_connection(request)
    state.requests_by_status[response.status] += 1
    return response


def _fault_shape(path: str, *, mde: bool) -> ErrorShape | None:
    """How an injected fault is worded where it differs from the OData default: MDE's correlation id,
    the upload API's own 429 body (``Try again in <n> seconds.``)."""
    if mde:
        return correlated_error_response
    if UPLOAD_ROUTE.fullmatch(path) is not None:
        return sentinel_fault_shape
    return None


def _arrival(request: web.BaseRequest) -> float:
    """The loop time the request arrived (now, if its connection did not note it)."""
    protocol = request.protocol
    return protocol.arrived if isinstance(protocol, _TimedHandler) else asyncio.get_running_loop().time()


class _TimedHandler(RequestHandler):
    """aiohttp's per-connection protocol, noting when data last arrived: a request's arrival time,
    from which the injected latency runs (HTTP/1.1 without pipelining: one request at a time)."""

    arrived = 0.0

    def data_received(self, data: bytes) -> None:
        self.arrived = self._loop.time()
        super().data_received(data)


class _Server(web.Server):
    """aiohttp's low-level server: every request goes to ``_dispatch``, which matches paths
    case-insensitively itself, so no application, router or middleware chain runs per request."""

    def __init__(self, state: EmulatorState) -> None:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            return await _dispatch(request, state)

        super().__init__(handle, access_log=None)

    def __call__(self) -> RequestHandler:
        return _TimedHandler(self, loop=self._loop, **self._kwargs)

    def _make_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        # As the base class does, but with room for large bulk bodies (its default is 1 MB).
        return web.BaseRequest(message, payload, protocol, writer, task, self._loop,
                               client_max_size=_MAX_BODY)


def build_server(state: EmulatorState) -> web.Server:
    """The emulator's HTTP server over ``state`` (serve it with ``web.ServerRunner``)."""
    return _Server(state)


class Emulator:
    """A running emulator: its URLs, its configuration, and controls for tests."""

    def __init__(self, state: EmulatorState, base_url: str) -> None:
        self._state = state
        self.base_url = base_url
        self.config = state.config
        self.ti_url = f"{base_url}/V1.0/"
        self.mde_url = f"{base_url}/api/"
        self.sentinel_url = f"{base_url}/"  # the upload API's base and ARM's, both on this host:port

    def auth_url(self, version: int = 1, tenant: str | None = None) -> str:
        tenant = tenant or self.config.clients[0].tenant
        if version == 2:
            return f"{self.base_url}/{tenant}/oauth2/v2.0/token"
        return f"{self.base_url}/{tenant}/oauth2/token"

    def sentinel_upload_url(self, workspace: SentinelWorkspace | str | None = None) -> str:
        """A workspace's STIX objects upload URL (default: the first configured), with its api-version."""
        workspace_id = workspace if isinstance(workspace, str) else self._workspace(workspace).workspace_id
        return (f"{self.base_url}/workspaces/{workspace_id}/threat-intelligence-stix-objects:upload"
                f"?api-version={UPLOAD_API_VERSION}")

    def query_indicators_url(self, workspace: SentinelWorkspace | None = None) -> str:
        """A workspace's ARM ``queryIndicators`` URL (default: the first configured), with its api-version."""
        return (f"{self.base_url}{arm_workspace_path(self._workspace(workspace))}/providers/"
                "Microsoft.SecurityInsights/threatIntelligence/main/queryIndicators"
                f"?api-version={QUERY_API_VERSION}")

    def _workspace(self, workspace: SentinelWorkspace | None) -> SentinelWorkspace:
        if workspace is not None:
            return workspace
        if not self.config.sentinel_workspaces:
            raise ValueError("the emulator has no Sentinel workspace configured")
        return self.config.sentinel_workspaces[0]

    def state(self) -> dict[str, Any]:
        return snapshot(self._state)

    def reset(self) -> None:
        self._state.reset()

    def set_api_faults(self, faults: Faults) -> None:
        self._state.set_api_faults(faults)

    def set_token_faults(self, faults: Faults) -> None:
        self._state.set_token_faults(faults)

    def __repr__(self) -> str:
        return f"Emulator(base_url={self.base_url!r})"


@asynccontextmanager
async def running_emulator(config: EmulatorConfig | None = None, *, host: str = "127.0.0.1",
                           port: int = 0) -> AsyncIterator[Emulator]:
    """Serve the emulator on ``host:port`` (0 = a free port) for the duration of the block."""
    state = EmulatorState(config or EmulatorConfig())
    # On exit, answers still waiting out an injected latency get a second, not aiohttp's minute.
    runner = web.ServerRunner(build_server(state), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        display_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        state.base_url = f"http://{display_host}:{bound_port}"
        yield Emulator(state, state.base_url)
    finally:
        await runner.cleanup()
