"""The private and reserved address blocks no feed should make a target block, each with its reason.

Filtered on every target unless a feed says ``allow_private = true``: a private, loopback or
documentation address in a feed is a sandbox's own network or an example, and a Defender
``Block`` on it cuts a company off from itself. IPv4-mapped IPv6 forms (``::ffff:10.0.0.1``) of
the IPv4 blocks are listed too, with the same reasons.
"""

from __future__ import annotations

import ipaddress

from importer.policy.ranges import Block

__all__ = ["PRIVATE_V4", "PRIVATE_V6", "private_blocks"]

# (block, reason): the reason names the kind of address and the RFC that reserves it.
PRIVATE_V4: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "reserved address ('this network', RFC 1122)"),
    ("0.0.0.0/32", "unspecified address (RFC 1122)"),
    ("10.0.0.0/8", "private address (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT, RFC 6598)"),
    ("127.0.0.0/8", "loopback address (RFC 1122)"),
    ("169.254.0.0/16", "link-local address (RFC 3927)"),
    ("172.16.0.0/12", "private address (RFC 1918)"),
    ("192.0.0.0/24", "reserved address (IETF protocol assignments, RFC 6890)"),
    ("192.0.2.0/24", "documentation address (RFC 5737)"),
    ("192.168.0.0/16", "private address (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking address (RFC 2544)"),
    ("198.51.100.0/24", "documentation address (RFC 5737)"),
    ("203.0.113.0/24", "documentation address (RFC 5737)"),
    ("224.0.0.0/4", "multicast address (RFC 5771)"),
    ("240.0.0.0/4", "reserved address (RFC 1112)"),
    ("255.255.255.255/32", "broadcast address (RFC 919)"),
)
PRIVATE_V6: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified address (RFC 4291)"),
    ("::1/128", "loopback address (RFC 4291)"),
    ("fc00::/7", "unique local address (RFC 4193)"),
    ("fe80::/10", "link-local address (RFC 4291)"),
    ("2001:db8::/32", "documentation address (RFC 3849)"),
    ("ff00::/8", "multicast address (RFC 4291)"),
)
_MAPPED = int(ipaddress.IPv6Address("::ffff:0.0.0.0"))  # ::ffff:0:0/96, RFC 4291 2.5.5.2


def private_blocks(rank: int) -> tuple[list[Block], list[Block]]:
    """The IPv4 blocks and the IPv6 ones (the IPv4 blocks mapped included), at ``rank``."""
    v4 = [Block.of(ipaddress.IPv4Network(cidr), reason, rank) for cidr, reason in PRIVATE_V4]
    v6 = [Block.of(ipaddress.IPv6Network(cidr), reason, rank) for cidr, reason in PRIVATE_V6]
    v6 += [Block(_MAPPED + b.first, _MAPPED + b.last, f"IPv4-mapped {b.name}", rank) for b in v4]
    return v4, v6
