"""The forward proxy of a request (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``), chosen once per origin.

The settings read the variables as urllib, curl and aiohttp's ``trust_env`` do
(``NetworkSettings.proxies``, lower-case names first); ``NO_PROXY`` is matched by urllib's rules,
which aiohttp uses: ``*``, or names that match the host (or ``host:port``) whole or as a domain
suffix, a leading dot ignored. Not ``trust_env`` itself: it looks the proxy up, and reads
``~/.netrc``, in a worker thread on every request — two thread hops per call, which also reorder
the run's requests, and a netrc password added to requests nobody asked it for. A proxy's
credentials (``http://user:pass@proxy:3128``) go in its ``Proxy-Authorization`` only, and never in
a message.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from yarl import URL

from importer.transport.connection import NetworkSettings

__all__ = ["Proxies", "proxies_of"]

# The proxy (without credentials) and the headers sent to it: ``Proxy-Authorization`` when its URL
# carried credentials, else None. (None, None): straight to the host.
Proxy = tuple[URL | None, Mapping[str, str] | None]
_NONE: Proxy = (None, None)


def proxies_of(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """``{https,http,no}_proxy`` of ``env`` as ``(scheme or "no", value)`` pairs: a lower-case name
    wins over its upper-case twin; an empty one unsets it (as urllib's ``getproxies_environment``)."""
    found: dict[str, str] = {}
    for lower_pass in (False, True):
        for name, value in env.items():
            low = name.lower()
            if not low.endswith("_proxy") or (lower_pass and name != low):
                continue
            kind = low.removesuffix("_proxy")
            if kind not in ("https", "http", "no"):
                continue
            if value:
                found[kind] = value
            elif lower_pass:
                found.pop(kind, None)
    if "REQUEST_METHOD" in env:  # httpoxy (CVE-2016-1000110): under CGI, HTTP_PROXY is a request header
        found.pop("http", None)
    return tuple(sorted(found.items()))


class Proxies:
    """The proxy for each origin a run talks to, decided on its first request and remembered."""

    def __init__(self, network: NetworkSettings) -> None:
        self._table = dict(network.proxies)
        self._chosen: dict[tuple[str, str, int | None], Proxy] = {}

    def for_url(self, url: str | URL) -> Proxy:
        """The proxy (without credentials) and the headers for it, for ``url``; ``(None, None)``: direct."""
        parsed = url if isinstance(url, URL) else URL(url)
        key = (parsed.scheme, parsed.host or "", parsed.port)
        chosen = self._chosen.get(key)
        if chosen is None:
            chosen = self._chosen[key] = self._choose(*key)
        return chosen

    def _choose(self, scheme: str, host: str, port: int | None) -> Proxy:
        proxy = self._table.get(scheme)
        if not proxy or not host:
            return _NONE
        if _bypassed(host, port, self._table.get("no", "")):
            return _NONE
        parsed = URL(proxy if "://" in proxy else f"http://{proxy}")  # curl's default: "host:3128"
        if parsed.user is None:
            return parsed, None
        # Basic, as curl and aiohttp send a proxy URL's credentials.
        token = base64.b64encode(f"{parsed.user}:{parsed.password or ''}".encode()).decode("ascii")
        return parsed.with_user(None), {"Proxy-Authorization": f"Basic {token}"}


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    if no_proxy.strip() == "*":
        return True
    candidates = (host.lower(), f"{host.lower()}:{port}")  # an IPv6 host and its entry compared bare
    for entry in no_proxy.split(","):
        name = entry.strip().lstrip(".").lower().replace("[", "").replace("]", "")
        if name and any(c == name or c.endswith("." + name) for c in candidates):
            return True
    return False
