"""importer.policy: each rule of a feed's policy, the allowlist file, private blocks and the range tables."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import pytest

from feeds.model import Indicator, Kind
from importer.errors import ConfigError
from importer.fields import (
    ALLOW_PRIVATE,
    ALLOWLIST,
    COMMON,
    KINDS,
    LABELS_ANY,
    LABELS_NONE,
    MIN_CONFIDENCE,
    WARNINGLISTS,
    WARNINGLISTS_EXCLUDE,
    build_definition,
)
from importer.policy import Policy
from importer.policy.allowlist import read_allowlist
from importer.policy.names import find_suffix, url_host
from importer.policy.private import PRIVATE_V4, PRIVATE_V6
from importer.policy.ranges import Block, RangeTable, cidr_block


def ind(kind: Kind, value: str, **kw: object) -> Indicator:
    return Indicator(kind, value, "feed.txt:1", **kw)  # type: ignore[arg-type]


# -- rules on the indicator's own fields -----------------------------------------------------------


def test_nothing_set_keeps_everything_but_private_addresses() -> None:
    policy = Policy()
    assert policy.judge(ind(Kind.SHA256, "a" * 64)) is None
    assert policy.judge(ind(Kind.DOMAIN, "google.com")) is None  # no warning lists asked for
    assert policy.judge(ind(Kind.IPV4, "8.8.8.8")) is None
    assert policy.judge(ind(Kind.IPV4, "10.1.2.3")) == "private address (RFC 1918)"


def test_kinds_keeps_only_the_kinds_named() -> None:
    policy = Policy(kinds=("ipv4", "domain"))
    assert policy.judge(ind(Kind.IPV4, "1.2.3.4")) is None
    assert policy.judge(ind(Kind.DOMAIN, "evil.example")) is None
    assert policy.judge(ind(Kind.MD5, "a" * 32)) == "kind md5 not in kinds"


def test_min_confidence_filters_lower_and_missing_confidence() -> None:
    policy = Policy(min_confidence=50)
    assert policy.judge(ind(Kind.MD5, "a" * 32, confidence=50)) is None
    assert policy.judge(ind(Kind.MD5, "a" * 32, confidence=49)) == "confidence below 50 (min_confidence)"
    assert policy.judge(ind(Kind.MD5, "a" * 32)) == "confidence below 50 (min_confidence)"


def test_labels_any_and_labels_none_ignore_letter_case() -> None:
    policy = Policy(labels_any=("tlp:white", "TLP:GREEN"), labels_none=("test",))
    assert policy.judge(ind(Kind.MD5, "a" * 32, labels=("TLP:WHITE",))) is None
    assert policy.judge(ind(Kind.MD5, "a" * 32, labels=("x", "tlp:green"))) is None
    assert policy.judge(ind(Kind.MD5, "a" * 32, labels=("tlp:amber",))) == (
        "no label of labels_any (tlp:white, TLP:GREEN)"
    )
    assert policy.judge(ind(Kind.MD5, "a" * 32)) == "no label of labels_any (tlp:white, TLP:GREEN)"
    assert policy.judge(ind(Kind.MD5, "a" * 32, labels=("tlp:white", "Test"))) == "label Test in labels_none"


def test_rules_apply_in_order_and_the_first_match_is_the_reason() -> None:
    policy = Policy(kinds=("ipv4",), min_confidence=90)
    assert policy.judge(ind(Kind.MD5, "a" * 32, confidence=1)) == "kind md5 not in kinds"
    assert policy.judge(ind(Kind.IPV4, "10.0.0.1", confidence=1)) == "confidence below 90 (min_confidence)"
    assert policy.judge(ind(Kind.IPV4, "10.0.0.1", confidence=95)) == "private address (RFC 1918)"


# -- private and reserved addresses ----------------------------------------------------------------

PRIVATE_CASES = [
    (Kind.IPV4, "10.1.2.3", "private address (RFC 1918)"),
    (Kind.IPV4, "172.31.255.255", "private address (RFC 1918)"),
    (Kind.IPV4, "192.168.0.1", "private address (RFC 1918)"),
    (Kind.IPV4, "127.0.0.1", "loopback address (RFC 1122)"),
    (Kind.IPV4, "169.254.10.10", "link-local address (RFC 3927)"),
    (Kind.IPV4, "100.64.0.1", "shared address space (carrier-grade NAT, RFC 6598)"),
    (Kind.IPV4, "192.0.2.7", "documentation address (RFC 5737)"),
    (Kind.IPV4, "198.51.100.7", "documentation address (RFC 5737)"),
    (Kind.IPV4, "203.0.113.7", "documentation address (RFC 5737)"),
    (Kind.IPV4, "224.0.0.251", "multicast address (RFC 5771)"),
    (Kind.IPV4, "0.0.0.0", "unspecified address (RFC 1122)"),
    (Kind.IPV4, "255.255.255.255", "broadcast address (RFC 919)"),
    (Kind.IPV6, "::1", "loopback address (RFC 4291)"),
    (Kind.IPV6, "::", "unspecified address (RFC 4291)"),
    (Kind.IPV6, "fd12:3456::1", "unique local address (RFC 4193)"),
    (Kind.IPV6, "fe80::1", "link-local address (RFC 4291)"),
    (Kind.IPV6, "2001:db8::7", "documentation address (RFC 3849)"),
    (Kind.IPV6, "ff02::1", "multicast address (RFC 4291)"),
    (Kind.IPV6, "::ffff:10.0.0.1", "IPv4-mapped private address (RFC 1918)"),
    (Kind.IPV6, "::ffff:127.0.0.1", "IPv4-mapped loopback address (RFC 1122)"),
    (Kind.URL, "http://192.168.1.1/login", "private address (RFC 1918)"),
    (Kind.URL, "https://user@[fe80::1]:8443/x", "link-local address (RFC 4291)"),
]


@pytest.mark.parametrize(("kind", "value", "reason"), PRIVATE_CASES)
def test_private_and_reserved_addresses_are_filtered_with_their_reason(
    kind: Kind, value: str, reason: str
) -> None:
    assert Policy().judge(ind(kind, value)) == reason
    assert Policy(private=False).judge(ind(kind, value)) is None  # allow_private = true


@pytest.mark.parametrize("value", ["1.1.1.1", "172.32.0.1", "100.128.0.1", "11.0.0.1", "223.255.255.255"])
def test_public_ipv4_addresses_are_kept(value: str) -> None:
    assert Policy().judge(ind(Kind.IPV4, value)) is None


@pytest.mark.parametrize("value", ["2606:4700::1111", "2001:db9::1", "::ffff:8.8.8.8", "fe00::1"])
def test_public_ipv6_addresses_are_kept(value: str) -> None:
    assert Policy().judge(ind(Kind.IPV6, value)) is None


def test_the_private_table_agrees_with_ipaddress_on_random_addresses() -> None:
    networks = [(ipaddress.ip_network(cidr), reason) for cidr, reason in (*PRIVATE_V4, *PRIVATE_V6)]
    policy, rng = Policy(), random.Random(7)
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    for _ in range(3000):
        if rng.random() < 0.5:
            address = ipaddress.IPv4Address(rng.getrandbits(32))
        else:  # mostly near the listed v6 blocks, else nothing would fall in them
            top = rng.choice((0, 0xFC00, 0xFE80, 0x2001, 0xFF00, 0xFD00))
            address = ipaddress.IPv6Address((top << 112) | rng.getrandbits(100))
        holders = [(n, r) for n, r in networks if address in n]
        kind = Kind.IPV4 if address.version == 4 else Kind.IPV6
        got = policy.judge(ind(kind, str(address)))
        if not holders:
            assert got is None, address
        else:  # the innermost block names it
            assert got == max(holders, key=lambda nr: nr[0].prefixlen)[1], address


# -- range tables ----------------------------------------------------------------------------------


def test_range_table_names_the_best_block_nested_or_disjoint() -> None:
    def block(cidr: str, name: str, rank: int = 0) -> Block:
        return Block.of(ipaddress.ip_network(cidr), name, rank)

    table = RangeTable([
        block("10.0.0.0/8", "outer"), block("10.1.0.0/16", "inner"), block("10.1.2.0/24", "innermost"),
        block("10.1.2.0/25", "allowed", rank=-1), block("10.2.0.0/16", "weaker", rank=5),
        block("12.0.0.0/8", "other"),
    ])  # fmt: skip

    def at(address: str) -> str | None:
        return table.find(int(ipaddress.ip_address(address)))

    assert at("9.255.255.255") is None and at("11.0.0.0") is None and at("13.0.0.0") is None
    assert at("10.0.0.0") == "outer" and at("10.255.255.255") == "outer"
    assert at("10.1.0.0") == "inner" and at("10.1.3.0") == "inner" and at("10.1.255.255") == "inner"
    assert at("10.1.2.200") == "innermost"
    assert at("10.1.2.1") == "allowed"  # the lower rank wins over the blocks around it
    assert at("10.2.3.4") == "outer"  # a higher rank does not win over its parent
    assert at("12.34.56.78") == "other"


def test_cidr_block_reads_what_warning_lists_hold() -> None:
    assert cidr_block("8.8.8.0/24", "n") == (4, Block(0x08080800, 0x080808FF, "n", 0))
    assert cidr_block("8.8.8.8/24", "n") == (4, Block(0x08080800, 0x080808FF, "n", 0))  # host bits
    assert cidr_block("1.2.3.4", "n") == (4, Block(0x01020304, 0x01020304, "n", 0))
    assert cidr_block("2001:db8::/32", "n") == (6, Block.of(ipaddress.ip_network("2001:db8::/32"), "n"))
    for bad in ("nonsense", "1.2.3.4/33", "1.2.3.4/x", "::/129", ""):
        assert cidr_block(bad, "n") is None


# -- names -----------------------------------------------------------------------------------------


def test_find_suffix_matches_a_domain_and_its_subdomains_only() -> None:
    table = {"example.com": "listed"}
    assert find_suffix(table, "example.com") == "listed"
    assert find_suffix(table, "a.b.example.com") == "listed"
    assert find_suffix(table, "badexample.com") is None
    assert find_suffix(table, "example.com.evil") is None


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://evil.example/x", "evil.example"),
        ("https://user:pw@evil.example:8443/x?y#z", "evil.example"),
        ("evil.example/path", "evil.example"),
        ("http://[2001:db8::1]:80/", "2001:db8::1"),
        ("http://10.0.0.1", "10.0.0.1"),
    ],
)
def test_url_host(url: str, host: str) -> None:
    assert url_host(url) == host


# -- the allowlist file ----------------------------------------------------------------------------


def test_allowlist_holds_values_ranges_and_domains_with_subdomains(tmp_path: Path) -> None:
    path = tmp_path / "allow.txt"
    path.write_text(
        "# our own infrastructure\n"
        "\n"
        "93.184.216.0/24\n"
        "2606:2800:220::/48  # v6 too\n"
        "corp.example\n"
        "*.cdn.example\n"
        "44D88612FEA8A8F36DE82E1F5D4D4E87\n"
        "hxxp://tools[.]example/agent.exe\n"
        "1.1.1.1\n"
    )
    policy = Policy(allowlist=read_allowlist(str(path)))
    reason = f"on the allowlist {path}"
    for kind, value in [
        (Kind.IPV4, "93.184.216.34"), (Kind.IPV6, "2606:2800:220:1::1"), (Kind.IPV4, "1.1.1.1"),
        (Kind.DOMAIN, "corp.example"), (Kind.DOMAIN, "vpn.corp.example"), (Kind.DOMAIN, "img.cdn.example"),
        (Kind.MD5, "44d88612fea8a8f36de82e1f5d4d4e87"), (Kind.URL, "http://tools.example/agent.exe"),
        (Kind.URL, "https://vpn.corp.example/login"), (Kind.URL, "http://93.184.216.1/x"),
    ]:  # fmt: skip
        assert policy.judge(ind(kind, value)) == reason, value
    for kind, value in [
        (Kind.IPV4, "93.184.217.1"), (Kind.DOMAIN, "notcorp.example"), (Kind.MD5, "b" * 32),
        (Kind.URL, "http://tools.example/other.exe"), (Kind.IPV4, "1.1.1.2"),
    ]:  # fmt: skip
        assert policy.judge(ind(kind, value)) is None, value


def test_allowlist_wins_over_the_private_reason(tmp_path: Path) -> None:
    path = tmp_path / "allow.txt"
    path.write_text("10.20.0.0/16\n")
    policy = Policy(allowlist=read_allowlist(str(path)))
    assert policy.judge(ind(Kind.IPV4, "10.20.1.1")) == f"on the allowlist {path}"
    assert policy.judge(ind(Kind.IPV4, "10.21.1.1")) == "private address (RFC 1918)"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("not a value!", "'not a value!' is not a value, a CIDR range or a domain"),
        ("10.0.0.1/8", "'10.0.0.1/8' is not a CIDR range"),
        ("1.2.3.0/33", "'1.2.3.0/33' is not a CIDR range"),
        ("abcd" * 9, "is not a value, a CIDR range or a domain"),
    ],
)
def test_a_bad_allowlist_line_is_one_sentence_naming_file_and_line(
    tmp_path: Path, line: str, says: str
) -> None:
    path = tmp_path / "allow.txt"
    path.write_text(f"# fine\n8.8.8.8\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        read_allowlist(str(path))
    message = str(caught.value)
    assert message.startswith(f"the allowlist {path}, line 3: ") and says in message
    assert "\n" not in message


def test_a_missing_or_binary_allowlist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_allowlist(str(tmp_path / "absent.txt"))
    binary = tmp_path / "allow.bin"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_allowlist(str(binary))


# -- built from a feed's options -------------------------------------------------------------------


def test_policy_of_reads_the_feed_options(tmp_path: Path) -> None:
    allow = tmp_path / "allow.txt"
    allow.write_text("evil.example\n")
    definition = build_definition(
        COMMON, "feed",
        **{KINDS.key: ("domain", "ipv4"), MIN_CONFIDENCE.key: 10, LABELS_ANY.key: ("tlp:white",),
           LABELS_NONE.key: ("x",), ALLOWLIST.key: str(allow), ALLOW_PRIVATE.key: True,
           WARNINGLISTS.key: False},
    )  # fmt: skip
    policy = Policy.of(definition, "mde")
    assert policy.warnings is None  # turned off on mde
    white = {"confidence": 50, "labels": ("tlp:white",)}
    assert policy.judge(ind(Kind.DOMAIN, "a.evil.example", **white)) == f"on the allowlist {allow}"
    assert policy.judge(ind(Kind.IPV4, "10.0.0.1", **white)) is None  # allow_private
    assert policy.judge(ind(Kind.SHA1, "a" * 40, **white)) == "kind sha1 not in kinds"


def test_warning_lists_default_on_for_mde_only() -> None:
    assert Policy.of(build_definition(COMMON, "feed"), "ti").warnings is None
    assert Policy.of(build_definition(COMMON, "feed"), "mde").warnings is not None
    on = build_definition(COMMON, "feed", **{WARNINGLISTS.key: True})
    assert Policy.of(on, "ti").warnings is not None


def test_an_unknown_warning_list_to_exclude_is_a_config_error() -> None:
    definition = build_definition(COMMON, "feed", **{WARNINGLISTS_EXCLUDE.key: ("No such list",)})
    with pytest.raises(ConfigError, match="'no such list', which is not a MISP warning list"):
        Policy.of(definition, "mde")
