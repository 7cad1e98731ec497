"""Which URLs a request may use, and the origin a token is bound to.

A usable URL is http(s), names a host and a port from 1 to 65535, and is https unless its host is
this machine (127.0.0.0/8, ::1, ``localhost``: the emulator) or plain http was allowed
(``--allow-http``). An *origin* is a URL's scheme, host and port (RFC 6454): the bearer token goes
to the API's origin only, so two URLs that differ in any of the three are two parties.

URLs are shown in messages without user info, query or fragment: those may carry credentials.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

from yarl import URL

__all__ = ["is_loopback", "origin_of", "redirect_target", "shown", "url_problem"]

_MAX_PORT = 65535


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine: ``localhost`` or a loopback address (no DNS look-up)."""
    if not host:
        return False
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def origin_of(url: str | URL) -> str:
    """``scheme://host:port`` of ``url``, the port always written (a default one too), the host in
    lower case: equal strings are one origin."""
    parsed = url if isinstance(url, URL) else URL(url)
    host = (parsed.host or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parsed.scheme.lower()}://{host}:{parsed.port}"


def shown(url: str | URL) -> str:
    """``url`` fit for a message: scheme, host, port and path only."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "(an unreadable URL)"
    return _shown(parts)


def redirect_target(base: str | URL, location: str | None) -> URL | None:
    """Where a redirect from ``base`` points (its ``Location`` resolved); None if it names nothing usable."""
    if not location:
        return None
    try:
        return URL(str(base)).join(URL(location))
    except ValueError:
        return None


def _shown(parts: SplitResult) -> str:
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else parts.path


def url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why ``url`` cannot be used, as words that follow its name ("TI_API_URL has no host"); None
    when it can. Plain http is a problem unless its host is loopback or ``allow_http``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return f"must be an https:// URL, got {_shown(parts) or repr(url)}"
    if not parts.hostname:
        return f"has no host name: {_shown(parts)}"
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= _MAX_PORT:
        written = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        return f"has an unusable port {written} (ports go from 1 to {_MAX_PORT}): {_shown(parts)}"
    try:
        URL(url)  # what aiohttp will parse: refuse here what it would refuse mid-run
    except ValueError:
        return f"is not a valid URL: {_shown(parts)}"
    if scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        return (
            f"is plain http to {parts.hostname}, another machine: use https (plain http only to this "
            "machine, or with --allow-http)"
        )
    return None
