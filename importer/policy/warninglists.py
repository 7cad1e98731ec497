"""The MISP warning lists (``pymispwarninglists``, shipped with the package: no network) as look-up tables.

Loaded once per process, on first use (a run none of whose feeds uses them never loads them),
under a lock so two feeds' producers do not load them twice. Only lists that can match one of
our kinds are kept, by their ``matching_attributes`` (``ip-src``, ``domain``, ``url``, ``md5``...)
and their type: ``cidr`` into a ``RangeTable`` per IP version, ``hostname`` into a suffix table
(a domain, or a URL's host, and its subdomains), ``string`` into one exact dict. The two
``substring`` lists that can match our kinds hold a few dozen host names and one address (sandbox
services, Microsoft's phishing simulator): matched as host names with their subdomains (and the
address exactly), not anywhere in a value — a regular expression of them cost more per domain
than all the rest. ``regex`` lists match only attributes we do not have (phone numbers, e-mail).

A match's reason names the list as MISP shows it (``REASON``, built once per list);
``warninglists_exclude`` leaves lists out by that name. The tables are built once per distinct
exclusion (the feeds of a run usually share one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from importer.errors import ConfigError
from importer.policy.ranges import Block, RangeTable, cidr_block

__all__ = ["REASON", "WarningIndex", "warning_index"]

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
    """The kept lists' entries by how they match, each value naming its list; ``names``: every
    list the package ships (kept or not), for checking ``warninglists_exclude``."""

    exact: dict[str, str] = field(default_factory=dict)  # every value but certificate thumbprints
    certs: dict[str, str] = field(default_factory=dict)  # certificate thumbprints (``_CERT``)
    hosts: dict[str, str] = field(default_factory=dict)  # ``names.find_suffix``
    v4: RangeTable = field(default_factory=lambda: RangeTable(()))
    v6: RangeTable = field(default_factory=lambda: RangeTable(()))
    lists: tuple[str, ...] = ()  # the names of the lists kept
    load_seconds: float = 0.0  # reading the package's lists (the first index of the process pays it)
    build_seconds: float = 0.0


_lock = threading.Lock()
_raw: list[dict[str, Any]] | None = None
_raw_seconds = 0.0
_indexes: dict[frozenset[str], WarningIndex] = {}


def warning_index(exclude: Iterable[str] = ()) -> WarningIndex:
    """The tables of every shipped list but those named in ``exclude`` (built once per exclusion);
    a ConfigError if ``exclude`` names a list the package does not ship (a typo would else leave
    the list on without a word)."""
    excluded = frozenset(name.casefold() for name in exclude)
    with _lock:
        index = _indexes.get(excluded)
        if index is None:
            raw = _load()
            known = {str(item["name"]).casefold() for item in raw}
            unknown = sorted(excluded - known)
            if unknown:
                raise ConfigError(
                    f"warninglists_exclude names {unknown[0]!r}, which is not a MISP warning list "
                    "(give a list's name as the rejects file's reason shows it)"
                )
            index = _build(item for item in raw if str(item["name"]).casefold() not in excluded)
            _indexes[excluded] = index
        return index


def _load() -> list[dict[str, Any]]:
    """The package's lists, as their JSON says, minus those that cannot match our kinds."""
    global _raw, _raw_seconds  # noqa: PLW0603 - the process-wide cache this module exists for
    if _raw is None:
        # Imported here: a run without warning lists never pays for reading ~120 JSON files.
        from pymispwarninglists.api import WarningLists  # noqa: PLC0415

        started = time.perf_counter()
        lists = WarningLists(slow_search=False)
        _raw = [
            wl.warninglist for wl in lists.values()
            if wl.type in _TYPES and _OUR_ATTRIBUTES & set(wl.warninglist.get("matching_attributes", ()))
        ]  # fmt: skip
        _raw_seconds = time.perf_counter() - started
    return _raw


def _build(lists: Iterable[dict[str, Any]]) -> WarningIndex:
    started = time.perf_counter()
    index = WarningIndex(load_seconds=_raw_seconds)
    v4: list[Block] = []
    v6: list[Block] = []
    # When lists share a value, the first by name names it, on every run: lists are added last to
    # first, each ``update`` overwriting what a later one set (dict work in C: 2 M values in ~1 s).
    ordered = sorted(lists, key=lambda item: str(item["name"]))
    index.lists = tuple(str(item["name"]) for item in ordered)
    for item in reversed(ordered):
        kind, name = item["type"], REASON.format(item["name"])  # one reason string per list
        entries = _lower(item["list"])  # hashes and names compare lower-case
        if kind == "cidr":
            _add_networks(entries, name, v4, v6)
        elif kind == "string":
            attributes = set(item.get("matching_attributes", ()))
            if attributes & _OUR_ATTRIBUTES - {_CERT}:
                index.exact.update(dict.fromkeys(entries, name))
            if _CERT in attributes:
                index.certs.update(dict.fromkeys(entries, name))
        else:  # hostname, substring (see above): a host and its subdomains; an address exactly
            index.hosts.update(dict.fromkeys(_bare_hosts(entries), name))
            if kind == "substring":
                index.exact.update(dict.fromkeys(entries, name))
    index.v4, index.v6 = RangeTable(v4), RangeTable(v6)
    index.build_seconds = time.perf_counter() - started
    return index


def _lower(entries: list[str]) -> list[str]:
    """``entries`` lower-cased; the list itself (no copy of a million strings) when it already is."""
    joined = "\n".join(entries)
    return entries if joined == joined.lower() else [entry.lower() for entry in entries]


def _bare_hosts(entries: list[str]) -> list[str]:
    """Host names without a leading ``*.`` or dot or a trailing dot; the list itself when none has one."""
    joined = "\n" + "\n".join(entries) + "\n"
    if "\n." not in joined and "\n*" not in joined and ".\n" not in joined:
        return entries
    return [entry.removeprefix("*.").strip(".") for entry in entries]


def _add_networks(entries: list[str], name: str, v4: list[Block], v6: list[Block]) -> None:
    for entry in entries:
        parsed = cidr_block(entry, name)
        if parsed is None:  # a list is data we do not write: a bad entry is skipped, not fatal
            continue
        (v4 if parsed[0] == 4 else v6).append(parsed[1])
