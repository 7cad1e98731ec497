"""A feed's allowlist file, read once into look-up tables: values, CIDR ranges, domains with their subdomains.

One entry a line; ``#`` starts a comment (a whole line, or after a space); blank lines are skipped.
An entry is a CIDR range (``10.20.0.0/16``, ``2001:db8::/48``), or any value a list feed takes, in
any form it takes it (``feeds.canonical.classify``: hashes, IPs, URLs, refanged or not): a domain
(``example.com``, ``*.example.com`` or ``.example.com``) covers its subdomains; anything else
matches exactly. A line that is none of these is a ``ConfigError`` naming the file and the line.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from feeds.canonical import InvalidValue, classify
from feeds.model import Kind
from importer.errors import ConfigError
from importer.policy.ranges import Block

__all__ = ["Allowlist", "read_allowlist"]


@dataclass(slots=True)
class Allowlist:
    """An allowlist's entries by how they match; every match gives ``reason``."""

    reason: str
    exact: set[str] = field(default_factory=set)  # canonical values: hashes, URLs
    domains: dict[str, str] = field(default_factory=dict)  # domain -> reason (``names.find_suffix``)
    v4: list[Block] = field(default_factory=list)
    v6: list[Block] = field(default_factory=list)


def read_allowlist(path: str, *, rank: int = 0) -> Allowlist:
    """The allowlist at ``path`` (its blocks at ``rank``); a ConfigError if it cannot be read or a
    line is not an entry."""
    allow = Allowlist(f"on the allowlist {path}")
    try:
        with Path(path).expanduser().open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                entry = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
                if entry and not entry.startswith("#"):
                    _add(allow, entry, rank, f"the allowlist {path}, line {number}")
    except FileNotFoundError:
        raise ConfigError(f"the allowlist {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the allowlist {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"the allowlist {path} cannot be read: {exc.strerror}") from None
    return allow


def _add(allow: Allowlist, entry: str, rank: int, where: str) -> None:
    if "/" in entry and "://" not in entry and entry.partition("/")[2].isdigit():
        try:
            network = ipaddress.ip_network(entry)
        except ValueError as exc:
            raise ConfigError(f"{where}: {entry!r} is not a CIDR range ({exc})") from None
        (allow.v4 if network.version == 4 else allow.v6).append(Block.of(network, allow.reason, rank))
        return
    try:
        kind, value = classify(entry.removeprefix("*.").removeprefix("."))
    except InvalidValue as exc:
        raise ConfigError(
            f"{where}: {entry[:100]!r} is not a value, a CIDR range or a domain ({exc})"
        ) from None
    if kind is Kind.DOMAIN:
        allow.domains[value] = allow.reason
    elif kind is Kind.IPV4 or kind is Kind.IPV6:
        network = ipaddress.ip_network(value)
        (allow.v4 if network.version == 4 else allow.v6).append(Block.of(network, allow.reason, rank))
    else:
        allow.exact.add(value)
