"""Loopback stand-ins for the network between the importer and its hosts: a forward proxy, a TLS
server signed by a private CA, and servers that record who asked them what.

``forward_proxy`` is a real HTTP proxy (CONNECT tunnels for https, absolute-form requests for
http) that notes the first line of every request it is asked to carry. ``https_emulator`` serves
the emulator over TLS with a certificate of a ``trustme`` CA, as behind a TLS-inspecting proxy or
with a private CA. ``recording_server`` answers with a handler and keeps each request's method,
path, ``Authorization`` header and body, so a test can say what a host must never receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from yarl import URL

from importer.emulator import Emulator, EmulatorConfig
from importer.emulator.server import build_server
from importer.emulator.state import EmulatorState


@dataclass
class ForwardProxy:
    url: str  # http://127.0.0.1:PORT, for HTTPS_PROXY / HTTP_PROXY
    seen: list[str] = field(default_factory=list)  # "CONNECT host:port", "GET http://host:port/path"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError):
        writer.close()


@asynccontextmanager
async def forward_proxy() -> AsyncIterator[ForwardProxy]:
    """A forward proxy on a free loopback port for the duration of the block."""
    proxy = ForwardProxy(url="")
    open_streams: set[asyncio.StreamWriter] = set()  # closed at the end: tunnels outlive requests

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        open_streams.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            proxy.seen.append(f"{method} {target}")
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, upstream = await asyncio.open_connection(host.strip("[]"), int(port))
                open_streams.add(upstream)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:  # absolute-form, passed on as it came: a server must accept it (RFC 9112, 3.2.2)
                url = URL(target)
                up_reader, upstream = await asyncio.open_connection(url.host, url.port)
                open_streams.add(upstream)
                upstream.write(head)
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    with contextlib.suppress(ConnectionError, OSError):
                        stream.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield proxy
    finally:
        server.close()
        for stream in open_streams:
            with contextlib.suppress(ConnectionError, OSError):
                stream.close()
        await server.wait_closed()


@asynccontextmanager
async def _serve(
    server: web.Server | web.Application, ssl_context: ssl.SSLContext | None
) -> AsyncIterator[str]:
    runner: web.BaseRunner[web.BaseRequest] | web.AppRunner
    if isinstance(server, web.Application):
        runner = web.AppRunner(server, handle_signals=False, shutdown_timeout=1.0)
    else:
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def https_emulator(
    server_tls: ssl.SSLContext, config: EmulatorConfig | None = None
) -> AsyncIterator[Emulator]:
    """The emulator over TLS on a free loopback port, with ``server_tls``'s certificate."""
    state = EmulatorState(config or EmulatorConfig())
    async with _serve(build_server(state), server_tls) as base:
        state.base_url = base  # its nextLinks and token audiences name the https origin
        yield Emulator(state, base)


@dataclass
class Seen:
    method: str
    path_qs: str
    authorization: str | None
    body: bytes


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RecordingServer:
    base: str
    seen: list[Seen]

    def url(self, path: str) -> str:
        return self.base + path


@asynccontextmanager
async def recording_server(
    handler: Handler, *, server_tls: ssl.SSLContext | None = None
) -> AsyncIterator[RecordingServer]:
    """A loopback server that answers every request with ``handler`` and records it first."""
    seen: list[Seen] = []

    async def record(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append(Seen(request.method, request.path_qs, request.headers.get("Authorization"), body))
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with _serve(app, server_tls) as base:
        yield RecordingServer(base, seen)
