"""A real TAXII 2.1 server on loopback for the TAXII tests: OASIS's ``medallion``, memory backend.

medallion is a Flask application held in a module global, so one server serves the whole test
session (``serve_taxii``), each test asking for a collection of its own (``new_collection``).
Objects are added straight into its memory backend with the time the server records as their
``date_added`` (``TaxiiServer.add``), so cursors are the same on every run. It answers HTTP Basic
only: a header-authenticated feed sends ``Authorization: Basic ...`` as its header.

``stix_indicators`` are real STIX indicators, from the shared real feeds when present (else the
bundled sample); ``sha256_indicator`` builds a synthetic one whose value a test can name.

Not re-exported by ``tests.helpers``: only the TAXII tests need medallion (the ``test`` extra).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import medallion
from medallion.backends.memory_backend import MemoryBackend
from werkzeug.serving import WSGIRequestHandler, make_server

API_ROOT = "api1"
USER, PASSWORD = "reader", "taxii-test-password"
_REAL = Path("/work/shared/real-feeds/stix")
_REAL_FILES = ("talos_2024-01_new-zardoor-backdoor.json", "oasis_examples_poisonivy.json")
_SAMPLE = Path(__file__).resolve().parents[2] / "feeds" / "samples" / "sample_bundle.json"


def basic_header() -> str:
    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@dataclass(frozen=True)
class Asked:
    """One request the server got: its path, query and Authorization header."""

    path: str
    query: dict[str, str]
    authorization: str | None


@dataclass
class TaxiiServer:
    base: str  # http://127.0.0.1:PORT
    backend: Any  # medallion's MemoryBackend
    asked: list[Asked] = field(default_factory=list)  # every request, in order
    # Answers to give instead of medallion's, by the number of the request (1-based): a status.
    failures: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def objects_requests(self, collection_url: str) -> list[Asked]:
        path = collection_url.removeprefix(self.base) + "objects/"
        return [asked for asked in self.asked if asked.path == path]

    def new_collection(self) -> str:
        """A fresh, empty collection; its URL (the feed's source)."""
        collection_id = str(uuid.uuid4())
        with self.lock:
            self.backend.data[API_ROOT]["collections"].append({
                "id": collection_id, "title": f"test {collection_id}", "can_read": True, "can_write": True,
                "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": [],
            })  # fmt: skip
        return f"{self.base}/{API_ROOT}/collections/{collection_id}/"

    def add(self, collection_url: str, objects: list[dict[str, Any]], added: datetime) -> None:
        """Add ``objects`` as the server would at ``added`` (their ``date_added``)."""
        collection_id = collection_url.rstrip("/").rsplit("/", 1)[1]
        with self.lock:
            status = self.backend.add_objects(API_ROOT, collection_id, {"objects": objects}, added)
        assert status["failure_count"] == 0, status


def _data() -> dict[str, Any]:
    return {
        "/discovery": {"title": "ti-importer tests", "api_roots": [], "default": ""},
        API_ROOT: {
            "information": {
                "title": "tests", "versions": ["application/taxii+json;version=2.1"],
                "max_content_length": 10_000_000,
            },
            "status": [],
            "collections": [],
        },
    }  # fmt: skip


@contextlib.contextmanager
def serve_taxii(max_page_size: int = 1000) -> Iterator[TaxiiServer]:
    """medallion on a free loopback port for the block, ready when it returns."""

    app = medallion.application_instance
    if not getattr(app, "_ti_tests_ready", False):  # blueprints register once per process
        medallion.register_blueprints(app)
        app._ti_tests_ready = True  # type: ignore[attr-defined]
    app.users_backend = {USER: PASSWORD}  # type: ignore[attr-defined]
    app.taxii_config = {"max_page_size": max_page_size}  # type: ignore[attr-defined]
    backend = MemoryBackend()
    backend.data = _data()
    app.medallion_backend = backend  # type: ignore[attr-defined]
    taxii = TaxiiServer("", backend)
    server = make_server("127.0.0.1", 0, _recording(app, taxii), threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="medallion", daemon=True)
    thread.start()
    try:
        taxii.base = f"http://127.0.0.1:{server.server_port}"
        _wait_ready(taxii.base)
        taxii.asked.clear()
        yield taxii
    finally:
        server.shutdown()
        thread.join(timeout=5)


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # a line per request on stderr says nothing a test does not assert


def _recording(app: Any, taxii: TaxiiServer) -> Any:
    """``app`` noting each request in ``taxii.asked`` first, and failing those ``taxii.failures`` names."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
        with taxii.lock:
            taxii.asked.append(Asked(environ["PATH_INFO"], query, environ.get("HTTP_AUTHORIZATION")))
            status = taxii.failures.pop(len(taxii.asked), None)
        if status is not None:
            start_response(f"{status} Injected", [("Content-Type", "application/taxii+json;version=2.1")])
            return [json.dumps({"title": "injected", "http_status": str(status)}).encode()]
        return app(environ, start_response)

    return wsgi


def _wait_ready(base: str, deadline: float = 10.0) -> None:
    ends = time.monotonic() + deadline
    request = urllib.request.Request(f"{base}/{API_ROOT}/", headers={
        "Accept": "application/taxii+json;version=2.1", "Authorization": basic_header(),
    })  # fmt: skip
    while True:
        try:
            with urllib.request.urlopen(request, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > ends:
            raise TimeoutError(f"medallion did not answer at {base} within {deadline} s")
        time.sleep(0.02)


def stix_indicators() -> list[dict[str, Any]]:
    """Real STIX 2.1 indicator objects: the shared real feeds' (when present), else the sample's."""
    files = [_REAL / name for name in _REAL_FILES if (_REAL / name).exists()] or [_SAMPLE]
    found: list[dict[str, Any]] = []
    for path in files:
        document = json.loads(path.read_text(encoding="utf-8"))
        objects = document.get("objects", []) if isinstance(document, dict) else document
        found.extend(obj for obj in objects if obj.get("type") == "indicator")
    return found


def sha256_indicator(n: int, *, modified: str = "2026-01-01T00:00:00.000Z", **extra: Any) -> dict[str, Any]:
    """A synthetic STIX 2.1 indicator of one SHA-256, with a stable id per ``n``."""
    value = hashlib.sha256(f"taxii-{n}".encode()).hexdigest()
    return {
        "type": "indicator", "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, f'taxii-{n}')}",
        "created": "2026-01-01T00:00:00.000Z", "modified": modified,
        "pattern": f"[file:hashes.'SHA-256' = '{value}']", "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z", **extra,
    }  # fmt: skip


def sha256_value(n: int) -> str:
    return hashlib.sha256(f"taxii-{n}".encode()).hexdigest()


def at(day: int, hour: int = 0) -> datetime:
    """A fixed ``date_added``: January ``day``, 2026."""
    return datetime(2026, 1, day, hour, tzinfo=UTC)
