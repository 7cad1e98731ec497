"""Fetch an http(s) feed by streaming it into a temporary file: bounded memory, bounded time.

The feed reader then reads the file like any other (``.gz`` detection included); the file is
deleted when the context ends — also when the download is cancelled (a stopped run cancels it,
see ``pipeline.produce``) and, via ``removed_on_hard_exit``, when a second signal exits the
process at once. Failures become ``FeedError`` — one sentence, no traceback.

The request goes out as the run's token and API calls do: through the proxy ``HTTPS_PROXY``,
``HTTP_PROXY`` and ``NO_PROXY`` choose (``transport.proxies``), TLS verified against the system's
roots and the run's CA bundle. The URL must be https unless its host is this machine or plain http is allowed
(``NetworkSettings``); redirects are followed here, hop by hop, so that a hop from https to plain
http is refused before anything is asked of it: a downgrade is how a feed gets swapped on the way.
A feed's credentials (``sources.secrets``: headers, HTTP Basic) go to the feed URL's own origin
only: a hop elsewhere is asked without them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import aiohttp
from yarl import URL

from feeds.model import FeedError
from importer.pipeline.signals import removed_on_hard_exit
from importer.sources.secrets import FeedCredentials
from importer.transport.connection import NetworkSettings
from importer.transport.http import describe_connection_error
from importer.transport.proxies import Proxies
from importer.transport.tls import tls_context, tls_problem
from importer.transport.urls import origin_of, redirect_target, shown, url_problem

__all__ = ["download"]

_log = logging.getLogger(__name__)
_CHUNK = 1 << 16
_REDIRECTS = {301, 302, 303, 307, 308}
_MAX_REDIRECTS = 10  # as browsers and curl bound a chain: a loop ends, a long honest chain does not


@asynccontextmanager
async def download(
    url: str,
    *,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    total_timeout: float = 1800.0,
    max_bytes: int = 4 << 30,
    network: NetworkSettings | None = None,
    credentials: FeedCredentials | None = None,
) -> AsyncIterator[Path]:
    """Stream ``url`` into a temporary file and yield its path (deleted afterwards).

    ``connect_timeout`` bounds connecting, ``read_timeout`` each wait for the next bytes,
    ``total_timeout`` the whole transfer (seconds; the feed's ``download_*`` options), ``max_bytes``
    its size (``max_download_bytes``); ``network`` says whom TLS trusts and whether plain http may go;
    ``credentials`` are sent to the URL's origin.
    """
    network = network or NetworkSettings()
    problem = url_problem(url, allow_http=network.allow_http)
    if problem is not None:
        raise FeedError(f"the feed URL {problem}")
    timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout, sock_read=read_timeout)
    fd, name = tempfile.mkstemp(prefix="ti-import-", suffix=".feed")
    try:
        with removed_on_hard_exit(name):
            with os.fdopen(fd, "wb") as out:
                size = await _fetch(url, out, timeout, max_bytes, network, credentials or FeedCredentials())
            _log.info("downloaded %s (%d bytes)", url, size)
            yield Path(name)
    finally:
        # A plain unlink: instant, and must run even when the loop is being torn down.
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


async def _fetch(  # noqa: PLR0917 -- one call site
    url: str,
    out: BinaryIO,
    limits: aiohttp.ClientTimeout,
    max_bytes: int,
    network: NetworkSettings,
    credentials: FeedCredentials,
) -> int:
    """Write the body of ``url`` to ``out``; its size. Every way it fails is one ``FeedError``."""
    size = 0
    connector = aiohttp.TCPConnector(ssl=tls_context(network.ca_bundle))
    try:
        async with (
            aiohttp.ClientSession(timeout=limits, connector=connector) as session,
            await _follow(session, url, network, credentials) as response,
        ):
            if response.status >= 400:
                raise FeedError(f"downloading {url} failed: HTTP {response.status} {response.reason}")
            async for chunk in response.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(f"downloading {url} stopped: larger than {max_bytes} bytes")
                out.write(chunk)
    except aiohttp.ClientSSLError as exc:
        raise FeedError(f"downloading {url} failed: {tls_problem(exc)}") from None
    # aiohttp's own timeouts are ClientErrors too, and all of them TimeoutErrors: most specific first.
    except aiohttp.ConnectionTimeoutError:
        why = f"no connection within {limits.sock_connect:g} s (download_connect_timeout)"
        raise FeedError(f"downloading {url} timed out: {why}") from None
    except aiohttp.SocketTimeoutError:
        why = f"no data for {limits.sock_read:g} s (download_read_timeout)"
        raise FeedError(f"downloading {url} timed out: {why}") from None
    except TimeoutError:
        why = f"not done after {limits.total:g} s (download_timeout)"
        raise FeedError(f"downloading {url} timed out: {why}") from None
    except aiohttp.ClientError as exc:
        raise FeedError(f"downloading {url} failed: {describe_connection_error(exc)}") from None
    return size


async def _follow(
    session: aiohttp.ClientSession, url: str, network: NetworkSettings, credentials: FeedCredentials
) -> aiohttp.ClientResponse:
    """The first answer to ``url`` that is not a redirect, each hop checked before it is asked."""
    current = URL(url)
    proxies = Proxies(network)
    home = origin_of(url)
    for _ in range(_MAX_REDIRECTS + 1):
        proxy, proxy_headers = proxies.for_url(current)
        ours = origin_of(current) == home  # the feed's secrets go to its own origin only
        response = await session.get(
            current,
            headers={"Accept-Encoding": "identity", **(credentials.request_headers() if ours else {})},
            allow_redirects=False,
            proxy=proxy,
            proxy_headers=proxy_headers,
        )
        if response.status not in _REDIRECTS:
            return response
        response.release()
        target = redirect_target(current, response.headers.get("Location"))
        if target is None:
            raise FeedError(f"downloading {url} failed: HTTP {response.status} redirect to no usable URL")
        if current.scheme == "https" and target.scheme != "https":
            raise FeedError(
                f"downloading {url} stopped: the server redirected from https to {shown(target)}, "
                "and a downgrade to plain http is refused"
            )
        problem = url_problem(str(target), allow_http=network.allow_http)
        if problem is not None:
            raise FeedError(f"downloading {url} stopped: the redirect target {problem}")
        current = target
    raise FeedError(f"downloading {url} stopped: more than {_MAX_REDIRECTS} redirects")
