"""The sentinel target's STIX objects without a network: ids, patterns and their escaping, what a STIX
feed's indicator keeps, what a list's gets, stamps, revocations, and the upload answer's words."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from datetime import UTC, datetime

import pytest

from feeds.model import Indicator, Kind
from feeds.options import FeedOptions
from feeds.stixfeed import parse
from importer.errors import ThrottledError
from importer.targets.sentinel.client import ArmWorkspace, refusals_of, wait_of
from importer.targets.sentinel.fields import TLP_MARKINGS
from importer.targets.sentinel.stix import (
    FeedScope,
    identity_id,
    identity_object,
    indicator_id,
    indicator_object,
    kind_value_of,
    pattern_of,
    remote_of_listed,
    revoked_object,
    stamp_of_indicator,
    stix_time,
)

WORKSPACE = "7d3c9a52-4b1e-4f0a-9c62-5e8b1d2a4f10"
NOW = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
LATER = datetime(2026, 5, 2, 8, 30, tzinfo=UTC)
SCOPE = FeedScope(WORKSPACE, "ti-importer", "feodo.csv", identity_id(WORKSPACE, "ti-importer", "feodo.csv"))

BUNDLE = {
    "type": "bundle",
    "id": "bundle--0f0e9c3a-7f0b-4a43-8d68-5f1e0c6d6b11",
    "objects": [
        {
            "type": "indicator", "spec_version": "2.1",
            "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2024-01-10T08:00:00.000Z", "modified": "2024-01-10T08:00:00.000Z",
            "name": "Poison Ivy C2", "description": "C2 of the campaign",
            "indicator_types": ["malicious-activity"], "labels": ["apt"], "confidence": 85,
            "pattern": "[domain-name:value = 'c2.example.com'] OR [ipv4-addr:value = '203.0.113.7']",
            "pattern_type": "stix", "valid_from": "2024-01-10T08:00:00Z",
            "valid_until": "2099-01-01T00:00:00Z",
            "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}],
            "external_references": [{"source_name": "report", "url": "https://example.org/r"}],
            "object_marking_refs": [TLP_MARKINGS["amber"]],
        },
    ],
}  # fmt: skip


def stix_indicators() -> list[Indicator]:
    records = parse(io.StringIO(json.dumps(BUNDLE)), "bundle.json", FeedOptions(now=NOW))
    return [r for r in records if isinstance(r, Indicator)]


# --- patterns -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "value", "pattern"),
    [
        (Kind.SHA256, "a" * 64, f"[file:hashes.'SHA-256' = '{'a' * 64}']"),
        (Kind.MD5, "b" * 32, f"[file:hashes.'MD5' = '{'b' * 32}']"),
        (Kind.SHA1, "c" * 40, f"[file:hashes.'SHA-1' = '{'c' * 40}']"),
        (Kind.IPV4, "203.0.113.7", "[ipv4-addr:value = '203.0.113.7']"),
        (Kind.IPV6, "2001:db8::7", "[ipv6-addr:value = '2001:db8::7']"),
        (Kind.DOMAIN, "evil.example", "[domain-name:value = 'evil.example']"),
        (Kind.URL, "http://evil.example/a", "[url:value = 'http://evil.example/a']"),
        (Kind.CERT_SHA1, "d" * 40, f"[x509-certificate:hashes.'SHA-1' = '{'d' * 40}']"),
    ],
)
def test_a_pattern_per_kind_that_reads_back_as_the_same_kind_and_value(
    kind: Kind, value: str, pattern: str
) -> None:
    assert pattern_of(kind, value) == pattern
    assert kind_value_of(pattern) == (kind, value)


def test_quotes_and_backslashes_are_escaped_as_stix_string_literals() -> None:
    url = "http://evil.example/it's\\here"
    pattern = pattern_of(Kind.URL, url)
    assert pattern == "[url:value = 'http://evil.example/it\\'s\\\\here']"
    assert kind_value_of(pattern) == (Kind.URL, url)  # the STIX grammar reads back what was meant


def test_a_pattern_not_of_ours_is_not_read_as_an_indicator() -> None:
    assert kind_value_of("[file:name = 'a.exe']") is None
    assert kind_value_of("[ipv4-addr:value = '1.2.3.4'] OR [ipv4-addr:value = '1.2.3.5']") is None
    assert kind_value_of("not a pattern") is None


# --- ids ------------------------------------------------------------------------------------------
def test_ids_are_uuid5_of_workspace_source_kind_and_value_and_nothing_else() -> None:
    one = indicator_id(WORKSPACE, "ti-importer", Kind.IPV4, "203.0.113.7")
    assert one == indicator_id(WORKSPACE.upper(), "ti-importer", Kind.IPV4, "203.0.113.7")
    assert one.startswith("indicator--") and uuid.UUID(one.removeprefix("indicator--")).version == 5
    others = {
        indicator_id("00000000-0000-4000-8000-000000000000", "ti-importer", Kind.IPV4, "203.0.113.7"),
        indicator_id(WORKSPACE, "other-source", Kind.IPV4, "203.0.113.7"),
        indicator_id(WORKSPACE, "ti-importer", Kind.IPV4, "203.0.113.8"),
        indicator_id(WORKSPACE, "ti-importer", Kind.DOMAIN, "203.0.113.7"),
    }
    assert one not in others and len(others) == 4
    assert identity_id(WORKSPACE, "ti-importer", "a") != identity_id(WORKSPACE, "ti-importer", "b")


# --- objects --------------------------------------------------------------------------------------
def test_a_stix_feeds_indicator_keeps_what_the_feed_said_with_one_pattern_per_value() -> None:
    domain, address = stix_indicators()
    body = indicator_object(domain, SCOPE, NOW)
    assert body["pattern"] == "[domain-name:value = 'c2.example.com']"
    assert pattern_of(address.kind, address.value) == "[ipv4-addr:value = '203.0.113.7']"
    assert body["id"] == indicator_id(WORKSPACE, "ti-importer", Kind.DOMAIN, "c2.example.com")
    assert (body["type"], body["spec_version"], body["pattern_type"]) == ("indicator", "2.1", "stix")
    assert body["name"] == "Poison Ivy C2" and body["description"] == "C2 of the campaign"
    assert body["confidence"] == 85 and body["indicator_types"] == ["malicious-activity"]
    assert (
        body["valid_from"] == "2024-01-10T08:00:00.000Z" and body["valid_until"] == "2099-01-01T00:00:00.000Z"
    )
    assert body["kill_chain_phases"] == [
        {"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}
    ]
    assert body["external_references"] == [{"source_name": "report", "url": "https://example.org/r"}]
    assert body["object_marking_refs"] == [TLP_MARKINGS["amber"]]
    assert (
        body["created_by_ref"] == SCOPE.identity and "feodo.csv" in body["labels"] and "apt" in body["labels"]
    )
    assert body["modified"] == "2026-05-01T12:00:00.123Z"


def test_a_list_indicator_gets_a_pattern_the_feed_label_its_expiry_and_the_feeds_marking() -> None:
    scope = FeedScope(SCOPE.workspace_id, SCOPE.source_system, SCOPE.feed, SCOPE.identity,
                      (TLP_MARKINGS["green"],), expires_at=LATER)  # fmt: skip
    body = indicator_object(Indicator(Kind.IPV4, "198.51.100.1", "feodo.csv:2"), scope, NOW)
    assert body["valid_from"] == body["created"] == body["modified"] == stix_time(NOW)
    assert body["valid_until"] == "2026-05-02T08:30:00.000Z"
    assert body["labels"] == ["feodo.csv"] and body["name"] == "198.51.100.1"
    assert body["object_marking_refs"] == [TLP_MARKINGS["green"]]
    assert "confidence" not in body and "kill_chain_phases" not in body


def test_the_stamp_follows_the_content_not_the_time_of_sending() -> None:
    indicator = Indicator(Kind.DOMAIN, "evil.example", "f:1", labels=("c2",), expires=LATER)
    stamp = stamp_of_indicator(indicator, SCOPE)
    assert stamp == stamp_of_indicator(indicator, SCOPE)  # whenever it is sent
    assert stamp.expires == int(LATER.timestamp())
    moved = stamp_of_indicator(Indicator(Kind.DOMAIN, "evil.example", "f:1", labels=("c2",)), SCOPE)
    relabelled = stamp_of_indicator(
        Indicator(Kind.DOMAIN, "evil.example", "f:1", labels=("x",), expires=LATER), SCOPE
    )
    assert moved.meta == stamp.meta and moved.expires is None
    assert relabelled.meta != stamp.meta
    domain, _ = stix_indicators()
    bare = dataclasses.replace(domain, stix=None)  # the same without its kill chain, references...
    assert stamp_of_indicator(domain, SCOPE).meta != stamp_of_indicator(bare, SCOPE).meta


def test_a_revocation_is_the_same_id_revoked_later_and_an_identity_names_the_feed() -> None:
    remote_id = indicator_id(WORKSPACE, "ti-importer", Kind.MD5, "b" * 32)
    body = revoked_object(remote_id, Kind.MD5, "b" * 32, SCOPE, LATER)
    assert body["id"] == remote_id and body["revoked"] is True
    assert body["modified"] == stix_time(LATER) and body["pattern"] == pattern_of(Kind.MD5, "b" * 32)
    identity = identity_object(SCOPE, "feed of C2s", NOW)
    assert (identity["type"], identity["id"], identity["name"]) == ("identity", SCOPE.identity, "feodo.csv")


def test_a_listed_indicator_is_ours_when_it_carries_the_feeds_label_and_is_not_revoked() -> None:
    def listed(
        labels: list[str], *, revoked: bool = False, pattern: str = "[ipv4-addr:value = '203.0.113.7']"
    ) -> object:
        return {"name": "x", "properties": {"pattern": pattern, "labels": labels, "revoked": revoked}}

    remote = remote_of_listed(listed(["feodo.csv"]), SCOPE)
    assert remote is not None and (remote.kind, remote.value) == (Kind.IPV4, "203.0.113.7")
    assert remote.remote_id == indicator_id(WORKSPACE, "ti-importer", Kind.IPV4, "203.0.113.7")
    assert remote_of_listed(listed(["other"]), SCOPE) is None
    assert remote_of_listed(listed(["feodo.csv"], revoked=True), SCOPE) is None
    assert remote_of_listed(listed(["feodo.csv"], pattern="[file:name = 'a']"), SCOPE) is None


# --- answers --------------------------------------------------------------------------------------
def test_per_object_errors_are_read_by_index_with_the_services_words() -> None:
    answer = {"errors": [
        {"recordIndex": 1, "errorMessages": ["Error for Property=valid_until: valid_until must be later."]},
        {"recordIndex": 7, "errorMessages": ["out of range"]}, {"recordIndex": "2"}, "junk",
    ]}  # fmt: skip
    assert refusals_of(answer, 3) == {1: "Error for Property=valid_until: valid_until must be later."}
    assert refusals_of(None, 3) == {} and refusals_of({"errors": "x"}, 3) == {}


def test_a_429_waits_the_seconds_its_message_names_else_its_retry_after() -> None:
    said = ThrottledError(
        "throttled (HTTP 429: Rate limit is exceeded. Try again in 17 seconds.)", retry_after=3
    )
    assert wait_of(said) == 17.0
    assert wait_of(ThrottledError("throttled (HTTP 429: slow down)", retry_after=3)) == 3


def test_the_arm_url_of_a_workspace() -> None:
    arm = ArmWorkspace(
        "http://127.0.0.1:9/", "0b9d4c1e-2f3a-4e5b-8c6d-7e8f9a0b1c2d", "ti-demo-rg", "ti-demo-workspace"
    )
    assert arm.query_url() == (
        "http://127.0.0.1:9/subscriptions/0b9d4c1e-2f3a-4e5b-8c6d-7e8f9a0b1c2d/resourceGroups/ti-demo-rg/providers/"
        "Microsoft.OperationalInsights/workspaces/ti-demo-workspace/providers/Microsoft.SecurityInsights/"
        "threatIntelligence/main/queryIndicators"
    )
