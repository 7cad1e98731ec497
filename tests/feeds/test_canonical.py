"""Canonical forms: refanging, hashes, IPs, domains (IDNA, trailing dot), URLs, and the rejection reasons."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds.canonical import (
    InvalidValue,
    classify,
    hash_reason,
    normalise,
    normalise_domain,
    normalise_hash,
    normalise_ip,
    normalise_url,
    refang,
)
from feeds.model import Kind

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("defanged", "plain"),
    [
        ("hxxp://evil[.]com/a", "http://evil.com/a"),
        ("hXXps://evil(.)com", "https://evil.com"),
        ("hxxps[:]//evil{.}com", "https://evil.com"),
        ("http[://]evil[dot]com", "http://evil.com"),
        ("evil(dot)com", "evil.com"),
        ("10[.]0[.]0[.]1", "10.0.0.1"),
        ("plain.example", "plain.example"),
    ],
)
def test_refang(defanged: str, plain: str) -> None:
    assert refang(defanged) == plain


@pytest.mark.parametrize(
    ("raw", "kind"), [(MD5.upper(), Kind.MD5), (SHA1, Kind.SHA1), (f" {SHA256} ", Kind.SHA256)]
)
def test_hash_kind_from_length_and_lower_case(raw: str, kind: Kind) -> None:
    assert normalise_hash(raw) == (kind, raw.strip().lower())


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (SHA256[:63], "63 hex digits, not a valid md5/sha1/sha256 (those have 32, 40 or 64)"),
        (SHA1 + "s", "41 characters, not a valid md5/sha1/sha256: contains non-hex 's'"),
        (SHA1[:39] + "g", "40 characters, not a valid sha1: contains non-hex 'g'"),
        (MD5[:30] + "x-", "32 characters, not a valid md5: contains non-hex 'x', '-'"),
        ("", "empty value"),
    ],
)
def test_near_hash_reasons_are_precise(raw: str, reason: str) -> None:
    assert hash_reason(raw) == reason
    with pytest.raises(InvalidValue, match="^" + reason.replace("(", r"\(").replace(")", r"\)") + "$"):
        normalise_hash(raw)


def test_classify_names_near_hashes_as_such() -> None:
    with pytest.raises(
        InvalidValue, match="41 characters, not a valid md5/sha1/sha256: contains non-hex 's'"
    ):
        classify(SHA1 + "s")
    with pytest.raises(InvalidValue, match="20 hex digits"):
        classify(SHA1[:20])


def test_normalise_checks_the_kind_asked_for() -> None:
    assert normalise(Kind.MD5, MD5) == MD5
    with pytest.raises(InvalidValue, match="not a md5 hash"):
        normalise(Kind.MD5, SHA1)
    with pytest.raises(InvalidValue, match="not an ipv4 address"):
        normalise(Kind.IPV4, "::1")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("192.0.2.1", (Kind.IPV4, "192.0.2.1")),
        ("192.0.2.1:443", (Kind.IPV4, "192.0.2.1")),
        ("192.0.2.1/32", (Kind.IPV4, "192.0.2.1")),
        ("192[.]0[.]2[.]1", (Kind.IPV4, "192.0.2.1")),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", (Kind.IPV6, "2001:db8::1")),
        ("[2001:db8::1]:8443", (Kind.IPV6, "2001:db8::1")),
        ("2001:db8:0:0:1:0:0:0", (Kind.IPV6, "2001:db8:0:0:1::")),  # the longest zero run goes
    ],
)
def test_ip_canonical_forms(raw: str, expected: tuple[Kind, str]) -> None:
    assert normalise_ip(raw) == expected


@pytest.mark.parametrize("raw", ["192.0.2.0/24", "256.1.1.1", "1.2.3", "2001:db8::/48", "example.com"])
def test_not_single_ips(raw: str) -> None:
    with pytest.raises(InvalidValue):
        normalise_ip(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("evil[.]example[.]org", "evil.example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        ("_dmarc.example.com", "_dmarc.example.com"),
    ],
)
def test_domain_canonical_forms(raw: str, expected: str) -> None:
    assert normalise_domain(raw) == expected


@pytest.mark.parametrize(
    "raw", ["localhost", "exa mple.com", "-bad.example", "a" * 64 + ".com", "e.g", "1.2.3.4"]
)
def test_not_domains(raw: str) -> None:
    with pytest.raises(InvalidValue):
        normalise_domain(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Evil.Example.COM/Path?Q=A#F", "http://evil.example.com/Path?Q=A#F"),
        ("hxxps://evil[.]com:8443/x", "https://evil.com:8443/x"),
        ("http://user:pw@Evil.com/", "http://user:pw@evil.com/"),
        ("http://[2001:DB8::1]:80/a", "http://[2001:db8::1]:80/a"),
        ("http://bücher.example/ä", "http://xn--bcher-kva.example/ä"),
        ("Evil.com/gate.php", "Evil.com/gate.php".replace("Evil", "evil")),
        ("216.238.72.121/t4", "216.238.72.121/t4"),
    ],
)
def test_url_canonical_forms(raw: str, expected: str) -> None:
    assert normalise_url(raw) == expected


@pytest.mark.parametrize("raw", ["http://exa mple.com/", "http:///path", "http://evil.com:99999999/", ""])
def test_not_urls(raw: str) -> None:
    with pytest.raises(InvalidValue):
        normalise_url(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (MD5, (Kind.MD5, MD5)),
        ("hxxp://45.136.230[.]191:4000/D234R23", (Kind.URL, "http://45.136.230.191:4000/D234R23")),
        ("evil[.]com", (Kind.DOMAIN, "evil.com")),
        ("evil.com/a", (Kind.URL, "evil.com/a")),
        ("176.113.115.107", (Kind.IPV4, "176.113.115.107")),
        ("fe80::1", (Kind.IPV6, "fe80::1")),
    ],
)
def test_classify(raw: str, expected: tuple[Kind, str]) -> None:
    assert classify(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty value"),
        ("Part", "not a hash, IP address, domain name or URL"),
        ("billing@example.com", "an email address"),
        ("10.0.0.0/8", "an address range"),
    ],
)
def test_classify_reasons(raw: str, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        classify(raw)


@given(st.tuples(*[st.integers(0, 255)] * 4), st.sampled_from(["", "0", "00"]))
def test_dotted_quad_fast_path_agrees_with_ipaddress(octets: tuple[int, ...], pad: str) -> None:
    text = ".".join(pad + str(o) if i == 2 else str(o) for i, o in enumerate(octets))
    try:
        expected: tuple[Kind, str] | None = (Kind.IPV4, str(ipaddress.ip_address(text)))
    except ValueError:
        expected = None  # leading zeros are ambiguous (octal?): ipaddress refuses them, so do we
    if expected is None:
        with pytest.raises(InvalidValue):
            normalise_ip(text)
    else:
        assert normalise_ip(text) == expected
        assert classify(text) == expected
