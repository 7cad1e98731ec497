"""A feed's value checks, one per kind, as closures over its tables: ``Policy.judge`` calls them.

Each check takes a canonical value and answers the reason it is filtered, or None. They are built
once per feed with every table and bound method in a local variable, because they run once per
indicator read (goal: 300,000 a second with the warning lists on): an attribute look-up or a
method call per table is a measurable share of that. The order within a check is the policy's:
the feed's allowlist and the private blocks (one range table), then the warning lists. A kind no
table can match gets no check at all.
"""

from __future__ import annotations

import socket
from array import array
from bisect import bisect_right
from collections.abc import Callable

from feeds.model import Kind
from importer.policy.names import Named, find_suffix, url_host
from importer.policy.ranges import CompactRanges, RangeTable
from importer.policy.warninglists import WarningIndex

__all__ = ["Check", "value_checks"]

Check = Callable[[str], "str | None"]

_FILE_HASHES = (Kind.MD5, Kind.SHA1, Kind.SHA256)
_NONE: dict[str, str] = {}


def value_checks(
    values: dict[str, str],
    hosts: dict[str, str],
    v4: RangeTable,
    v6: RangeTable,
    warn: WarningIndex | None,
) -> dict[Kind, Check]:
    """The checks of a feed: its allowlist's exact ``values`` and ``hosts`` (domains with their
    subdomains), its ``v4``/``v6`` range tables (allowlist and private blocks), and ``warn``."""
    exact = (warn.exact if warn is not None else _NONE).get
    listed_hosts: Named = warn.hosts if warn is not None else _NONE
    checks: dict[Kind, Check] = {}
    if values or warn is not None:
        checks.update(dict.fromkeys(_FILE_HASHES, _exact(values, exact)))
        checks[Kind.CERT_SHA1] = _exact(values, (warn.certs if warn is not None else _NONE).get)
    ipv4 = _address(v4, warn.v4 if warn else None, exact, socket.inet_aton)
    ipv6 = _address(v6, warn.v6 if warn else None, exact, _pton6)
    if ipv4 is not None:
        checks[Kind.IPV4] = ipv4
    if ipv6 is not None:
        checks[Kind.IPV6] = ipv6
    domain = _domain(hosts, listed_hosts, exact) if hosts or warn is not None else None
    if domain is not None:
        checks[Kind.DOMAIN] = domain
    if values or hosts or warn is not None or ipv4 is not None or ipv6 is not None:
        checks[Kind.URL] = _url(values.get, hosts, listed_hosts, exact=exact, ipv4=ipv4, ipv6=ipv6)
    return checks


def _pton6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def _exact(values: dict[str, str], listed: Callable[[str], str | None]) -> Check:
    if not values:
        return listed  # a dict's own ``get``: no Python frame per hash
    mine = values.get

    def check(value: str) -> str | None:
        return mine(value) or listed(value)

    return check


def _address(
    table: RangeTable, listed: CompactRanges | None, exact: Callable[[str], str | None],
    to_bytes: Callable[[str], bytes],
) -> Check | None:  # fmt: skip
    """An IPv4 or IPv6 check: the feed's table, then the lists' ranges, then their exact values."""
    if not len(table) and listed is None:
        return None
    starts, ends, names = table.columns()
    listed = listed if listed is not None else CompactRanges([], [], array("B"), ())
    l_starts, l_ends, l_ids, l_names = listed.starts, listed.ends, listed.ids, listed.names
    from_bytes, bisect = int.from_bytes, bisect_right

    def check(value: str) -> str | None:
        try:
            address = from_bytes(to_bytes(value), "big")
        except (OSError, ValueError):  # not canonical address text: nothing here can hold it
            return None
        at = bisect(starts, address) - 1
        if at >= 0 and address <= ends[at]:
            return names[at]
        at = bisect(l_starts, address) - 1
        if at >= 0 and address <= l_ends[at]:
            return l_names[l_ids[at]]
        return exact(value)

    return check


def _domain(hosts: dict[str, str], listed: Named, exact: Callable[[str], str | None]) -> Check:
    def check(value: str) -> str | None:
        found = find_suffix(hosts, value) if hosts else None
        return found or exact(value) or find_suffix(listed, value)

    return check


def _url(
    values: Callable[[str], str | None], hosts: dict[str, str], listed: Named, *,
    exact: Callable[[str], str | None], ipv4: Check | None, ipv6: Check | None,
) -> Check:  # fmt: skip
    """A URL: the allowlist's exact URLs; its host as an address (the address checks) or as a name
    (MISP's hostname lists match a URL's host; its string lists, the whole URL)."""

    def check(value: str) -> str | None:
        found = values(value)
        if found is not None:
            return found
        host = url_host(value)
        if host[:1].isdigit() or ":" in host:
            address = ipv4 if ":" not in host else ipv6
            found = address(host) if address is not None else None
        elif host:
            found = (find_suffix(hosts, host) if hosts else None) or find_suffix(listed, host)
        return found or exact(value)

    return check
