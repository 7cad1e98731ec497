"""importer.policy with the MISP warning lists of pymispwarninglists: what they filter, what they keep,
and ``warninglists_exclude``. The lists load once per process (a few seconds): one module shares them."""

from __future__ import annotations

import json

import pytest

from feeds.model import Indicator, Kind
from importer.policy import Policy, wlcache
from importer.policy.warninglists import REASON, warning_index


def judge(policy: Policy, kind: Kind, value: str) -> str | None:
    return policy.judge(Indicator(kind, value, "feed.txt:1"))


def first_entry(attribute: str, length: int) -> tuple[str, str]:
    """A list's name and an entry of it, from the package's JSON: the first string list matching
    ``attribute`` with an entry of ``length`` characters."""
    for file in wlcache.list_files():
        item = json.loads(file.read_text(encoding="utf-8"))
        if item["type"] == "string" and attribute in item.get("matching_attributes", ()):
            for entry in item["list"]:
                if len(entry) == length:
                    return str(item["name"]), entry.lower()
    raise AssertionError(f"no list of {attribute} values")


@pytest.fixture(scope="module")
def listed() -> Policy:
    return Policy(warnings=warning_index())


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (Kind.IPV4, "8.8.8.8"),  # a public resolver (CIDR lists)
        (Kind.IPV4, "1.1.1.1"),
        (Kind.DOMAIN, "google.com"),  # a top site (string and hostname lists)
        (Kind.DOMAIN, "update.microsoft.com"),  # a subdomain of one (hostname lists)
        (Kind.URL, "https://www.microsoft.com/"),  # a URL's host (hostname lists)
    ],
)
def test_harmless_values_are_filtered_naming_a_misp_list(listed: Policy, kind: Kind, value: str) -> None:
    reason = judge(listed, kind, value)
    assert reason is not None and reason.startswith(REASON.format(""))


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (Kind.SHA256, "0" * 63 + "1"),
        (Kind.DOMAIN, "evil-c2-4f9a1.example"),
        (Kind.IPV4, "45.9.148.3"),
        (Kind.URL, "http://evil-c2-4f9a1.example/payload.bin"),
    ],
)
def test_malicious_looking_values_are_kept(listed: Policy, kind: Kind, value: str) -> None:
    assert judge(listed, kind, value) is None


def test_private_addresses_keep_their_own_reason_over_the_lists(listed: Policy) -> None:
    # MISP has RFC 1918 lists too: the private table comes first, with the RFC in its reason.
    assert judge(listed, Kind.IPV4, "10.1.2.3") == "private address (RFC 1918)"


def test_a_known_benign_hash_is_filtered(listed: Policy) -> None:
    name, benign = first_entry("sha256", 64)
    reason = judge(listed, Kind.SHA256, benign)
    assert reason is not None and reason.startswith(REASON.format(""))  # this list, or one before it by name
    assert reason <= REASON.format(name)


def test_excluding_the_lists_that_match_a_value_keeps_it() -> None:
    excluded: list[str] = []
    for _ in range(20):  # 8.8.8.8 is on a handful of lists; each exclusion names the next
        reason = judge(Policy(warnings=warning_index(excluded)), Kind.IPV4, "8.8.8.8")
        if reason is None:
            break
        name = reason.removeprefix(REASON.format(""))
        assert name not in excluded
        excluded.append(name.upper())  # names are matched in any letter case
    else:
        pytest.fail(f"8.8.8.8 still filtered after excluding {excluded}")
    assert excluded


def test_the_index_is_built_once_per_exclusion() -> None:
    assert warning_index() is warning_index(())
    index = warning_index()
    assert index.load_seconds > 0 and len(index.lists) > 50
    # built from the package (indexed), or read from a cache an earlier test of the process wrote
    assert index.build_seconds > 0 if index.source == "package" else index.source == "cache"


def test_a_certificate_thumbprint_is_matched_only_by_lists_for_certificates(listed: Policy) -> None:
    # The SHA-1 of a known-benign file, given as a certificate's thumbprint: not that file.
    value = "3f786850e387550fdab836ed7e6dc881de23001b"
    assert judge(listed, Kind.SHA1, value) == REASON.format("List of known hashes for benign files")
    assert judge(listed, Kind.CERT_SHA1, value) is None
    name, thumbprint = first_entry("x509-fingerprint-sha1", 40)
    reason = judge(listed, Kind.CERT_SHA1, thumbprint)
    assert reason is not None and reason <= REASON.format(name)
