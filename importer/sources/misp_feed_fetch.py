"""Fetching a MISP feed's files — from a folder, or downloaded as any http feed is — for a reader in a thread.

``Fetcher.manifest`` reads ``manifest.json`` on the event loop's side. ``Fetcher.event`` is called
by the reader, which runs in a worker thread (the pipeline reads records there): it answers at
once with a future of the event's file, opened for reading. A remote event is downloaded by
``sources.download`` (the feed's timeouts, size cap, TLS, proxies and credentials, as for any http
feed), scheduled on the run's loop; its temporary file is opened, then unlinked when the download
ends, so the open handle is all that is left of it and closing it frees the disk.

``aclose`` (on the loop) cancels the downloads still running and closes the files fetched but
never read: a pull that stops halfway leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TextIO, TypeVar

from feeds.source import open_feed, read_error
from importer.fields import (
    DOWNLOAD_CONNECT_TIMEOUT,
    DOWNLOAD_READ_TIMEOUT,
    DOWNLOAD_TIMEOUT,
    MAX_DOWNLOAD_BYTES,
)
from importer.model import Options
from importer.sources.download import download
from importer.sources.secrets import CREDENTIALS
from importer.transport.connection import NetworkSettings

__all__ = ["Fetcher"]

T = TypeVar("T")
_MANIFEST = "manifest.json"


class Fetcher:
    """The files of the MISP feed at ``source`` (a folder, or an http(s) URL of one)."""

    def __init__(
        self, source: str, reading: Options, network: NetworkSettings, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.remote = "://" in source
        self._base = source if source.endswith("/") or not self.remote else source + "/"
        self.loop = loop
        self.loop_thread = threading.get_ident()  # made on the loop: the reader must be elsewhere
        self._limits: dict[str, Any] = {
            "connect_timeout": reading[DOWNLOAD_CONNECT_TIMEOUT],
            "read_timeout": reading[DOWNLOAD_READ_TIMEOUT],
            "total_timeout": reading[DOWNLOAD_TIMEOUT],
            "max_bytes": reading[MAX_DOWNLOAD_BYTES],
            "network": network,
            "credentials": reading[CREDENTIALS],
        }
        self._lock = threading.Lock()  # the reader's thread and the loop both touch these
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handles: set[BinaryIO] = set()

    def name_of(self, file: str) -> str:
        """Where ``file`` of the feed is: a URL, or a path."""
        return self._base + file if self.remote else str(Path(self._base) / file)

    def event_name(self, uuid: str) -> str:
        return self.name_of(f"{uuid}.json")

    async def manifest(self, read: Callable[[TextIO, str], T]) -> T:
        """``read(text, name)`` of the manifest, run in a thread; FeedError if it cannot be had."""
        name = self.name_of(_MANIFEST)
        if not self.remote:
            return await asyncio.to_thread(_read_text, name, name, read)
        async with download(name, **self._limits) as path:
            return await asyncio.to_thread(_read_text, str(path), name, read)

    def event(self, uuid: str) -> concurrent.futures.Future[BinaryIO]:
        """The event's file, opened (from the reader's thread); its result raises FeedError when the
        event cannot be had. ``release`` it once read."""
        name = self.event_name(uuid)
        if self.remote:
            return asyncio.run_coroutine_threadsafe(self._download(name), self.loop)
        fetched: concurrent.futures.Future[BinaryIO] = concurrent.futures.Future()
        try:
            handle = open(name, "rb")  # noqa: SIM115 -- closed by the reader, or by aclose
        except OSError as exc:
            fetched.set_exception(read_error(name, exc))
        else:
            self._keep(handle)
            fetched.set_result(handle)
        return fetched

    async def _download(self, url: str) -> BinaryIO:
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            self._tasks.add(task)
        try:
            async with download(url, **self._limits) as path:
                # Opened before download() unlinks it: the handle keeps the bytes until it is closed.
                # A local open is instant; in a thread, a cancellation could lose the handle.
                handle = open(path, "rb")  # noqa: ASYNC230, SIM115
                self._keep(handle)
                return handle
        finally:
            with self._lock:
                self._tasks.discard(task)

    def _keep(self, handle: BinaryIO) -> None:
        with self._lock:
            self._handles.add(handle)

    def release(self, handle: BinaryIO) -> None:
        """The reader is done with ``handle`` (and has closed it)."""
        with self._lock:
            self._handles.discard(handle)

    async def aclose(self) -> None:
        """Cancel the downloads still running, then close every file fetched and not released."""
        with self._lock:
            tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with self._lock:
            handles, self._handles = list(self._handles), set()
        for handle in handles:
            handle.close()


def _read_text(path: str, name: str, read: Callable[[TextIO, str], T]) -> T:
    """``read`` over the UTF-8 text of the file at ``path`` (gzip or not), shown as ``name``."""
    opened = open_feed(path, name)
    try:
        return read(opened.stream, name)
    except (OSError, EOFError, zlib.error) as exc:
        raise read_error(name, exc) from None
    finally:
        opened.close()
