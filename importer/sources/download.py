"""Fetch an http(s) feed by streaming it into a temporary file: bounded memory, bounded time.

The feed reader then reads the file like any other (``.gz`` detection included); the file is
deleted when the context ends. Failures become ``FeedError`` — one sentence, no traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from feeds.model import FeedError

__all__ = ["download"]

_log = logging.getLogger(__name__)
_CHUNK = 1 << 16


@asynccontextmanager
async def download(
    url: str,
    *,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    total_timeout: float | None = 1800.0,
    max_bytes: int = 4 << 30,
) -> AsyncIterator[Path]:
    """Stream ``url`` into a temporary file and yield its path (deleted afterwards).

    ``read_timeout`` bounds each wait for the next chunk; ``total_timeout`` the whole transfer.
    """
    timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout, sock_read=read_timeout)
    fd, name = tempfile.mkstemp(prefix="ti-import-", suffix=".feed")
    path = Path(name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            try:
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.get(url, headers={"Accept-Encoding": "identity"}) as response,
                ):
                    if response.status >= 400:
                        raise FeedError(f"downloading {url} failed: HTTP {response.status} {response.reason}")
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise FeedError(f"downloading {url} stopped: larger than {max_bytes} bytes")
                        out.write(chunk)
            except TimeoutError:
                raise FeedError(f"downloading {url} timed out") from None
            except aiohttp.ClientError as exc:
                raise FeedError(f"downloading {url} failed: {type(exc).__name__}") from None
        _log.info("downloaded %s (%d bytes)", url, size)
        yield path
    finally:
        # A plain unlink: instant, and must run even when the loop is being torn down.
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)
