"""The MISP warning lists (``pymispwarninglists``, shipped: no network) as compact look-up tables.

Loaded once per process, on first use (a run none of whose feeds uses them never loads them),
under a lock so two feeds' producers do not load them twice: from the compiled cache on disk
when there is a fresh one (``wlcache``: ~25 MB read in one go), else from the package's
JSON, one list file at a time, and then written to the cache for the next run.

Only lists that can match one of our kinds are kept, by their ``matching_attributes`` (``ip-src``,
``domain``, ``url``, ``md5``...) and their type: ``cidr`` into a ``CompactRanges`` per IP version,
``hostname`` into a suffix table (a domain, or a URL's host, and its subdomains), ``string`` into
one exact table — the last two as 64-bit keys (``hashed.HashTable``: 8 bytes a value instead of
a ~75-byte string and its dict slot; a false match has probability n·m/2⁶⁴). The two
``substring`` lists that can match our kinds hold a few dozen host names and one address (sandbox
services, Microsoft's phishing simulator): matched as host names with their subdomains (and the
address exactly), not anywhere in a value. ``regex`` lists match only attributes we do not have.

A match's reason names the list as MISP shows it (``REASON``); where lists share a value, the
first by name names it, on every run. ``warninglists_exclude`` leaves lists out by that name.
The tables are built once per distinct exclusion (the feeds of a run usually share one); none of
the package's strings outlives the build. Measured (``benchmarks/bench_policy.py``, 2 cores): from
the cache ~0.04 s, adding ~28 MB to a process's peak RSS; from the package 3 to 4.5 s and
~137 MB at the peak (the largest list's JSON), once per package version and journal folder —
against 2.6 s and ~355 MB each run when the package's strings were kept in dicts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from importer.errors import ConfigError
from importer.policy import wlcache
from importer.policy.hashed import HashTable, TableBuilder
from importer.policy.ranges import Block, CompactRanges, RangeTable, cidr_block

__all__ = ["REASON", "WarningIndex", "warning_index"]

_log = logging.getLogger(__name__)

# The MISP attribute types a value of one of our kinds is (feeds.model.Kind): a list that
# matches none of them cannot match anything we import. Composite types (``domain|ip``) are
# left out: a list meant for them alone (disposable e-mail domains) is not about our values.
_OUR_ATTRIBUTES = frozenset({
    "ip-src", "ip-dst", "domain", "hostname", "url", "uri", "link", "md5", "sha1", "sha256",
    "x509-fingerprint-sha1",
})  # fmt: skip
_TYPES = ("cidr", "hostname", "string", "substring")
# A certificate's SHA-1 thumbprint and a file's SHA-1 look alike (40 hex digits): each is matched
# only by the lists meant for it, or a known-benign *file* would keep a certificate out.
_CERT = "x509-fingerprint-sha1"
REASON = "MISP warning list: {}"


@dataclass(slots=True)
class WarningIndex:
    """The kept lists' entries by how they match, each naming its list (``REASON``)."""

    exact: HashTable  # every value but certificate thumbprints
    certs: HashTable  # certificate thumbprints (``_CERT``)
    hosts: HashTable  # ``names.find_suffix``
    v4: CompactRanges
    v6: CompactRanges
    lists: tuple[str, ...] = ()  # the names of the lists kept, in order (a table's ids index it)
    load_seconds: float = 0.0  # reading: the cache file, or the package's JSON
    build_seconds: float = 0.0  # indexing (0 from the cache)
    source: str = "package"  # "cache" or "package"


_lock = threading.Lock()
_indexes: dict[frozenset[str], WarningIndex] = {}  # compact tables only (~25 MB), no package object


def warning_index(exclude: Iterable[str] = (), cache_dir: Path | None = None) -> WarningIndex:
    """The tables of every shipped list but those named in ``exclude`` (loaded once a process per
    exclusion); a ConfigError if ``exclude`` names a list the package does not ship (a typo
    would else leave the list on without a word). With ``cache_dir``, read from and written to its
    compiled cache (a missing, stale or corrupt one is rebuilt silently)."""
    excluded = frozenset(name.casefold() for name in exclude)
    with _lock:  # the same tables wherever they came from: one load a process per exclusion
        index = _indexes.get(excluded)
        if index is None:
            index = _load(excluded, cache_dir)
            _indexes[excluded] = index
        return index


def _load(excluded: frozenset[str], cache_dir: Path | None) -> WarningIndex:
    files = wlcache.list_files()
    path = wlcache.cache_path(cache_dir, files, excluded) if cache_dir is not None else None
    if path is not None:
        started = time.perf_counter()
        cached = wlcache.read(path, files, excluded)
        if cached is not None:
            return WarningIndex(*cached, load_seconds=time.perf_counter() - started, source="cache")
    index = _build(files, excluded)
    if path is not None:
        tables = wlcache.Tables(index.exact, index.certs, index.hosts, index.v4, index.v6, index.lists)
        wlcache.write(path, tables, files, excluded)
    return index


def _build(files: list[Path], excluded: frozenset[str]) -> WarningIndex:
    """Reads the package's list files one at a time into builders: only keys and blocks stay."""
    started = time.perf_counter()
    id_bits = max(8, len(files).bit_length())
    exact, certs, hosts = TableBuilder(id_bits), TableBuilder(id_bits), TableBuilder(id_bits)
    kept: list[str] = []  # provisional ids: the order lists are read in
    known: set[str] = set()
    blocks: dict[int, tuple[list[Block], list[Block]]] = {}  # a CIDR list's, by provisional id
    for file in files:
        with file.open(encoding="utf-8") as handle:
            item = json.load(handle)
        name = str(item["name"])
        known.add(name.casefold())
        attributes = set(item.get("matching_attributes", ()))
        if item["type"] not in _TYPES or not _OUR_ATTRIBUTES & attributes or name.casefold() in excluded:
            continue
        list_id, kind, reason = len(kept), item["type"], REASON.format(name)
        kept.append(name)
        entries: list[str] = item["list"]
        if kind == "cidr":
            blocks[list_id] = _networks(entries, reason)
        elif kind == "string":  # hashes and names compare lower-case (lowered as read: no copy)
            if attributes & _OUR_ATTRIBUTES - {_CERT}:
                exact.add(map(str.lower, entries), list_id)
            if _CERT in attributes:
                certs.add(map(str.lower, entries), list_id)
        else:  # hostname, substring (see above): a host and its subdomains; an address exactly
            hosts.add(_bare_hosts(entries), list_id)
            if kind == "substring":
                exact.add(map(str.lower, entries), list_id)
        del item, entries
    unknown = sorted(excluded - known)
    if unknown:
        raise ConfigError(
            f"warninglists_exclude names {unknown[0]!r}, which is not a MISP warning list "
            "(give a list's name as the rejects file's reason shows it)"
        )
    read = time.perf_counter() - started
    order = sorted(range(len(kept)), key=lambda n: kept[n])  # the first by name names a value
    rank = [0] * len(kept)
    for position, n in enumerate(order):
        rank[n] = position
    names = [REASON.format(kept[n]) for n in order]
    index = WarningIndex(
        exact.build(names, rank), certs.build(names, rank), hosts.build(names, rank),
        # Last name first: where two lists hold equal blocks, the one added last names it.
        *_ranges([blocks[n] for n in reversed(order) if n in blocks], names, id_bits),
        lists=tuple(kept[n] for n in order),
    )  # fmt: skip
    index.load_seconds, index.build_seconds = read, time.perf_counter() - started - read
    return index


def _ranges(per_list: list[tuple[list[Block], list[Block]]], names: list[str], id_bits: int,
            ) -> tuple[CompactRanges, CompactRanges]:  # fmt: skip
    code = "B" if id_bits <= 8 else "H"
    v4 = RangeTable(block for blocks, _ in per_list for block in blocks)
    v6 = RangeTable(block for _, blocks in per_list for block in blocks)
    return CompactRanges.of(v4, names, code), CompactRanges.of(v6, names, code)


def _bare_hosts(entries: list[str]) -> Iterator[str]:
    """Host names lower-cased, without a leading ``*.`` or dot or a trailing dot (a list's entries
    as they are read: a million-name list is never copied)."""
    lowered = map(str.lower, entries)
    if not any(entry.startswith(("*.", ".")) or entry.endswith(".") for entry in entries):
        return lowered
    return (entry.removeprefix("*.").strip(".") for entry in lowered)


def _networks(entries: list[str], name: str) -> tuple[list[Block], list[Block]]:
    v4: list[Block] = []
    v6: list[Block] = []
    for entry in entries:
        parsed = cidr_block(entry.lower(), name)
        if parsed is None:  # a list is data we do not write: a bad entry is skipped, not fatal
            continue
        (v4 if parsed[0] == 4 else v6).append(parsed[1])
    return v4, v6
