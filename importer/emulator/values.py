"""Whether an indicator value is valid for its type: hashes, IP addresses, domain names, URLs."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

__all__ = ["is_domain", "is_full_ip", "is_hex_hash", "is_ip", "is_url"]

_HEX = re.compile(r"[0-9a-fA-F]+")
_IPV6_GROUP = re.compile(r"[0-9a-fA-F]{1,4}")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_TLD = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")


def is_hex_hash(value: str, length: int) -> bool:
    return len(value) == length and _HEX.fullmatch(value) is not None


def is_ip(value: str) -> bool:
    """A single IPv4 (dotted quad) or IPv6 address; no CIDR ranges, no zone ids."""
    if "/" in value or "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_full_ip(value: str) -> bool:
    """A dotted-quad IPv4 address, or an IPv6 address written with all 8 segments.

    The MDE API asks for every IPv6 segment: no ``::`` compression and no dotted IPv4 tail, so
    ``2001:db8::1`` is refused and ``2001:db8:0:0:0:0:0:1`` accepted.
    """
    if ":" not in value:
        return is_ip(value)
    groups = value.split(":")
    return len(groups) == 8 and all(_IPV6_GROUP.fullmatch(group) for group in groups)


def is_domain(value: str) -> bool:
    """A fully qualified DNS name in ASCII (IDNA) form: two or more labels, an alphabetic TLD."""
    if not value or len(value) > 253 or value.endswith("."):
        return False
    labels = value.split(".")
    if len(labels) < 2 or _TLD.fullmatch(labels[-1]) is None:
        return False
    return all(_LABEL.fullmatch(label) for label in labels[:-1])


def is_url(value: str) -> bool:
    """An http(s) or ftp URL with a host (a domain or an IP address)."""
    if len(value) > 2048 or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https", "ftp") or not host:
        return False
    return is_domain(host) or is_ip(host)
