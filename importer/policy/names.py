"""Host names matched with their subdomains, and the host of a URL: string work the look-ups share.

A suffix table maps a domain to a name (a list, an allowlist): a dict, or anything with its
``get`` (``hashed.HashTable``). ``find_suffix`` asks for the host itself, then for each parent
domain in turn (``a.b.example.com``: ``b.example.com``, ``example.com``, ``com``), a look-up each
— as many as the host has dots, whatever the table's size.
"""

from __future__ import annotations

import re
from typing import Protocol

__all__ = ["Named", "find_suffix", "url_host"]

# scheme://userinfo@host:port/...: the host, an [IPv6] one without its brackets. The URL is in
# ``feeds.canonical`` form (scheme and host lower-cased); a scheme-less ``host/path`` is one too.
_HOST = re.compile(r"(?:[a-z][a-z0-9+.\-]*://)?(?:[^/?#@]*@)?(?:\[([^\]/?#]*)\]|([^/?#:]*))")


def url_host(url: str) -> str:
    """The host of a canonical URL (an IPv6 one without brackets); "" if it has none."""
    match = _HOST.match(url)
    if match is None:  # the pattern matches any text (everything in it is optional): never None
        return ""
    return match.group(1) or match.group(2) or ""


class Named(Protocol):
    """A table of names by value: a ``dict[str, str]`` or a ``hashed.HashTable``."""

    def get(self, value: str, /) -> str | None: ...


def find_suffix(table: Named, host: str) -> str | None:
    """``table``'s name for ``host`` or the nearest parent domain of it that it holds, or None."""
    get = table.get
    found = get(host)
    if found is not None:
        return found
    dot = host.find(".")
    while dot >= 0:
        found = get(host[dot + 1 :])
        if found is not None:
            return found
        dot = host.find(".", dot + 1)
    return None
