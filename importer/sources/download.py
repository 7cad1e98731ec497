"""Fetch an http(s) feed by streaming it into a temporary file: bounded memory, bounded time.

The feed reader then reads the file like any other (``.gz`` detection included); the file is
deleted when the context ends — also when the download is cancelled (a stopped run cancels it,
see ``pipeline.produce``) and, via ``removed_on_hard_exit``, when a second signal exits the
process at once. Failures become ``FeedError`` — one sentence, no traceback.
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

from feeds.model import FeedError
from importer.pipeline.signals import removed_on_hard_exit

__all__ = ["download"]

_log = logging.getLogger(__name__)
_CHUNK = 1 << 16


@asynccontextmanager
async def download(
    url: str,
    *,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    total_timeout: float = 1800.0,
    max_bytes: int = 4 << 30,
) -> AsyncIterator[Path]:
    """Stream ``url`` into a temporary file and yield its path (deleted afterwards).

    ``connect_timeout`` bounds connecting, ``read_timeout`` each wait for the next bytes,
    ``total_timeout`` the whole transfer (seconds; the feed's ``download_*`` options).
    """
    timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout, sock_read=read_timeout)
    fd, name = tempfile.mkstemp(prefix="ti-import-", suffix=".feed")
    try:
        with removed_on_hard_exit(name):
            with os.fdopen(fd, "wb") as out:
                size = await _fetch(url, out, timeout, max_bytes)
            _log.info("downloaded %s (%d bytes)", url, size)
            yield Path(name)
    finally:
        # A plain unlink: instant, and must run even when the loop is being torn down.
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


async def _fetch(url: str, out: BinaryIO, limits: aiohttp.ClientTimeout, max_bytes: int) -> int:
    """Write the body of ``url`` to ``out``; its size. Every way it fails is one ``FeedError``."""
    size = 0
    try:
        async with (
            aiohttp.ClientSession(timeout=limits) as session,
            session.get(url, headers={"Accept-Encoding": "identity"}) as response,
        ):
            if response.status >= 400:
                raise FeedError(f"downloading {url} failed: HTTP {response.status} {response.reason}")
            async for chunk in response.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(f"downloading {url} stopped: larger than {max_bytes} bytes")
                out.write(chunk)
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
        raise FeedError(f"downloading {url} failed: {type(exc).__name__}") from None
    return size
