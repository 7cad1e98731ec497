"""STIX 2.x feed semantics: what each object and each comparison becomes."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.model import Detection, Expired, FeedError, Indicator, Kind, Record, Rejected, Skipped
from feeds.options import FeedOptions
from feeds.stixfeed import looks_like_stix1, parse

NOW = datetime(2024, 6, 1, tzinfo=UTC)
SHA256 = "a" * 64
MD5 = "B" * 32
SHA1 = "c" * 40


def _read(document: Any, now: datetime | None = NOW) -> list[Record]:
    text = document if isinstance(document, str) else json.dumps(document)
    return list(parse(io.StringIO(text), "f.json", FeedOptions(now=now)))


def _ind(pattern: str, **extra: Any) -> dict[str, Any]:
    obj = {"type": "indicator", "spec_version": "2.1", "id": "indicator--1", "pattern": pattern}
    obj["pattern_type"] = "stix"
    obj.update(extra)
    return obj


def _values(records: list[Record]) -> list[tuple[str, str]]:
    return [(str(r.kind), r.value) for r in records if isinstance(r, Indicator)]


# --- document shapes --------------------------------------------------------------------------


def test_bundle_list_and_lone_object_are_all_read() -> None:
    obj = _ind("[ipv4-addr:value = '1.2.3.4']")
    expected = [("ipv4", "1.2.3.4")]
    assert _values(_read({"type": "bundle", "id": "bundle--1", "objects": [obj]})) == expected
    assert _values(_read([obj])) == expected
    assert _values(_read(obj)) == expected


def test_stix20_without_pattern_type_or_spec_version() -> None:
    obj = {"type": "indicator", "id": "indicator--2", "labels": ["malicious-activity"]}
    obj["pattern"] = f"[file:hashes.SHA256 = '{SHA256}']"
    bundle = {"type": "bundle", "id": "bundle--1", "spec_version": "2.0", "objects": [obj]}
    [record] = _read(bundle)
    assert record == Indicator(Kind.SHA256, SHA256, "f.json:indicator--2", labels=("malicious-activity",))


def test_origin_is_the_object_id_or_its_position() -> None:
    no_id = _ind("[domain-name:value = 'a.example']")
    del no_id["id"]
    records = _read([{"type": "malware", "id": "malware--9"}, no_id, 42])
    assert records[0] == Skipped("f.json:malware--9", "malware")
    assert isinstance(records[1], Indicator) and records[1].origin == "f.json:#2"
    assert isinstance(records[2], Rejected) and records[2].origin == "f.json:#3"


def test_non_indicator_objects_are_skipped_with_their_type() -> None:
    objects = [{"type": t, "id": f"{t}--1"} for t in ("report", "relationship", "x-custom", "observed-data")]
    assert _read(objects) == [
        Skipped(f"f.json:{t}--1", t) for t in ("report", "relationship", "x-custom", "observed-data")
    ]


# --- comparisons ------------------------------------------------------------------------------


def test_each_comparison_of_a_compound_pattern_is_an_indicator() -> None:
    pattern = (
        f"[(file:hashes.MD5 = '{MD5}' OR file:hashes.'SHA-1' = '{SHA1}' OR file:hashes.'SHA-256' = "
        f"'{SHA256.upper()}') AND file:name = 'x.exe'] OR [ipv6-addr:value = '2001:DB8::1'] "
        "FOLLOWEDBY [url:value = 'HTTP://Evil.Example/a?b' AND domain-name:value = 'Evil.Example.']"
    )
    records = _read(_ind(pattern))
    assert _values(records) == [
        ("md5", MD5.lower()),
        ("sha1", SHA1),
        ("sha256", SHA256),
        ("ipv6", "2001:db8::1"),
        ("url", "http://evil.example/a?b"),
        ("domain", "evil.example"),
    ]
    [rejected] = [r for r in records if isinstance(r, Rejected)]
    assert rejected.raw == "file:name = 'x.exe'"
    assert rejected.reason == "file:name is not an indicator kind a target can hold"


@pytest.mark.parametrize("field", ["MD5", "'MD5'", "md5", "SHA1", "'SHA-1'", "SHA256", "'SHA-256'"])
def test_hash_fields_quoted_or_not(field: str) -> None:
    value = {"MD5": MD5, "SHA1": SHA1, "SHA256": SHA256}[field.strip("'").upper().replace("-", "")]
    [record] = _read(_ind(f"[file:hashes.{field} = '{value}']"))
    assert isinstance(record, Indicator) and record.value == value.lower()


def test_a_hash_field_holding_another_kind_is_rejected() -> None:
    [record] = _read(_ind(f"[file:hashes.MD5 = '{SHA256}']"))
    assert isinstance(record, Rejected) and "md5" in record.reason and "64" in record.reason


def test_other_hash_algorithms_are_rejected() -> None:
    [record] = _read(_ind("[file:hashes.'SHA-512' = 'ab']"))
    assert isinstance(record, Rejected) and "file:hashes.'SHA-512' is not a hash kind" in record.reason


def test_network_traffic_address_refs_ignore_type_and_port() -> None:
    pattern = (
        "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '70.34.208.197' "
        "AND network-traffic:dst_port = '10086'] OR [network-traffic:src_ref.value = 'c2.example' "
        "AND network-traffic:src_port = 443]"
    )
    assert _read(_ind(pattern)) == [
        Indicator(Kind.IPV4, "70.34.208.197", "f.json:indicator--1"),
        Indicator(Kind.DOMAIN, "c2.example", "f.json:indicator--1"),
    ]


@pytest.mark.parametrize(
    ("pattern", "kind", "detection", "value"),
    [
        ("[domain-name:value LIKE '%.Evil.Example']", Kind.DOMAIN, Detection.ENDS_WITH, ".evil.example"),
        ("[domain-name:value LIKE 'login.%']", Kind.DOMAIN, Detection.STARTS_WITH, "login."),
        ("[domain-name:value LIKE '%paypal%']", Kind.DOMAIN, Detection.CONTAINS, "paypal"),
        ("[url:value LIKE 'HTTP://Evil.Example/%']", Kind.URL, Detection.STARTS_WITH, "http://evil.example/"),
        ("[url:value LIKE '%/gate.php']", Kind.URL, Detection.ENDS_WITH, "/gate.php"),
        ("[url:value LIKE 'http://evil.example/x']", Kind.URL, Detection.EQUALS, "http://evil.example/x"),
    ],
)
def test_like_on_domains_and_urls(pattern: str, kind: Kind, detection: Detection, value: str) -> None:
    [record] = _read(_ind(pattern))
    assert isinstance(record, Indicator)
    assert (record.kind, record.detection, record.value) == (kind, detection, value)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("[domain-name:value LIKE 'a%b.example']", "only LIKE 'abc%'"),
        ("[domain-name:value LIKE '%']", "only LIKE 'abc%'"),
        ("[domain-name:value LIKE '%evil_site%']", "'_'"),
        ("[domain-name:value LIKE '%ev il%']", "not part of a domain name"),
        ("[ipv4-addr:value LIKE '10.%']", "LIKE can only become an indicator on domain-name and url"),
        ("[url:value MATCHES '^http://']", "the operator MATCHES"),
        ("[ipv4-addr:value != '1.2.3.4']", "the operator !="),
        ("[ipv4-addr:value IN ('1.2.3.4')]", "the operator IN"),
        ("[ipv4-addr:value NOT = '1.2.3.4']", "the operator NOT ="),
        ("[ipv4-addr:value = 5]", "not a string"),
        ("[ipv4-addr:value = '2001:db8::1']", "not an ipv4 address"),
        ("[ipv4-addr:value = '10.0.0.0/8']", "CIDR"),
        ("[domain-name:value = 'domain autuo.xicp.net']", "not a valid domain name"),
        ("[network-traffic:dst_ref.value = 'not an address']", "not an IP address or domain name"),
        ("[windows-registry-key:key = 'HKLM\\\\Run']", "windows-registry-key:key is not an indicator kind"),
        (
            "[x509-certificate:hashes.'SHA-256' = 'ab']",
            "x509-certificate:hashes.'SHA-256' is not an indicator kind",
        ),
        ("[email-addr:value = 'a@b.example']", "email-addr:value is not an indicator kind"),
        ("[mutex:name = 'Global\\\\x']", "mutex:name is not an indicator kind"),
        ("[process:name = 'x.exe']", "process:name is not an indicator kind"),
    ],
)
def test_comparisons_that_cannot_become_an_indicator_are_rejected_with_the_reason(
    pattern: str, reason: str
) -> None:
    [record] = _read(_ind(pattern))
    assert isinstance(record, Rejected), record
    assert reason in record.reason
    assert record.origin == "f.json:indicator--1"


def test_a_pattern_with_nothing_importable_is_rejected_once() -> None:
    [record] = _read(_ind("[network-traffic:dst_port = 443] AND [NOT EXISTS file:name]"))
    assert isinstance(record, Rejected) and "no comparison that can become an indicator" in record.reason


def test_a_pattern_that_does_not_parse_is_rejected_with_the_parsers_message() -> None:
    [record] = _read(_ind("[ipv4-addr:value = '1.2.3.4'"))
    assert isinstance(record, Rejected)
    assert record.raw == "[ipv4-addr:value = '1.2.3.4'"
    assert record.reason.startswith("not a valid STIX pattern: 1:") and "expecting ']'" in record.reason


@pytest.mark.parametrize("pattern_type", ["snort", "yara", "sigma", "suricata", "pcre", "openioc"])
def test_non_stix_pattern_types_are_rejected(pattern_type: str) -> None:
    [record] = _read(_ind('alert tcp any any -> any any (msg:"x";)', pattern_type=pattern_type))
    assert isinstance(record, Rejected) and f"pattern_type '{pattern_type}' is not STIX" in record.reason


# --- expiry and metadata ----------------------------------------------------------------------


def test_revoked_and_past_valid_until_are_expired_once_per_object() -> None:
    pattern = "[ipv4-addr:value = '1.2.3.4' OR ipv4-addr:value = '5.6.7.8']"
    revoked = _read(_ind(pattern, revoked=True))
    past = _read(_ind(pattern, valid_until="2024-05-31T23:59:59.999Z"))
    assert revoked == [Expired("f.json:indicator--1", pattern, "the indicator is revoked")]
    assert past == [
        Expired("f.json:indicator--1", pattern, "valid_until 2024-05-31T23:59:59.999Z has passed")
    ]


def test_expiry_uses_the_injected_now_else_the_real_one() -> None:
    obj = _ind("[ipv4-addr:value = '1.2.3.4']", valid_until="2030-01-01T00:00:00Z")
    [live] = _read(obj)
    assert isinstance(live, Indicator) and live.expires == datetime(2030, 1, 1, tzinfo=UTC)
    [expired] = _read(obj, now=datetime(2031, 1, 1, tzinfo=UTC))
    assert isinstance(expired, Expired)
    [real_now] = _read(_ind("[ipv4-addr:value = '1.2.3.4']", valid_until="2001-01-01T00:00:00Z"), now=None)
    assert isinstance(real_now, Expired)


def test_an_unreadable_valid_until_is_rejected() -> None:
    [record] = _read(_ind("[ipv4-addr:value = '1.2.3.4']", valid_until="soon"))
    assert isinstance(record, Rejected) and "valid_until is not a STIX timestamp" in record.reason


def test_metadata_is_carried_onto_every_indicator() -> None:
    obj = _ind(
        "[ipv4-addr:value = '1.2.3.4' OR domain-name:value = 'c2.example']",
        name="C2 server",
        description="Poison Ivy C2",
        labels=["apt", "c2"],
        indicator_types=["malicious-activity", "c2"],
        confidence=85,
        valid_from="2024-01-02T03:04:05.123456789Z",
        valid_until="2099-01-01T00:00:00Z",
    )
    records = _read(obj)
    assert len(records) == 2
    for record in records:
        assert isinstance(record, Indicator)
        assert record.description == "Poison Ivy C2"
        assert record.labels == ("apt", "c2", "malicious-activity")
        assert record.confidence == 85
        assert record.first_seen == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
        assert record.expires == datetime(2099, 1, 1, tzinfo=UTC)


def test_name_is_the_description_when_there_is_none_and_bad_fields_are_dropped() -> None:
    obj = _ind("[ipv4-addr:value = '1.2.3.4']", name="C2 server", confidence="high", valid_from="yesterday")
    [record] = _read(obj)
    assert isinstance(record, Indicator)
    assert (record.description, record.confidence, record.first_seen) == ("C2 server", None, None)


# --- refusals ---------------------------------------------------------------------------------

STIX1_XML = (
    '<?xml version="1.0"?>\n<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" version="1.2">'
)
STIX1_JSON = {"id": "example:Package-1", "version": "1.2", "stix_header": {"title": "x"}, "indicators": []}


@pytest.mark.parametrize("text", [STIX1_XML, json.dumps(STIX1_JSON)])
def test_stix1_is_refused_with_what_to_do(text: str) -> None:
    with pytest.raises(FeedError) as caught:
        _read(text)
    message = str(caught.value)
    assert "STIX 1.x" in message and "stix2-elevator" in message and "pip install stix2-elevator" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_looks_like_stix1() -> None:
    assert looks_like_stix1(STIX1_XML)
    assert looks_like_stix1(json.dumps(STIX1_JSON))
    assert looks_like_stix1('<?xml version="1.0"?><STIX_Package xmlns="http://stix.mitre.org/stix-1">')
    assert not looks_like_stix1(json.dumps({"type": "bundle", "spec_version": "2.1", "objects": []}))
    assert not looks_like_stix1("<html><body>STIX</body></html>")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"type": "bundle",\n "objects": [}', "line 2, column 14"),
        ("", "line 1, column 1"),
        ("ipv4,1.2.3.4\n", "not valid JSON"),
        ("42", "not STIX 2"),
        ('{"hello": "world"}', "has no 'type'"),
        ('{"type": "bundle", "objects": {}}', "'objects' is not a list"),
        ("[" * 100_000, "Unterminated deeply nested value at line 1, column 100001"),
    ],
)
def test_what_is_not_stix2_json_is_refused_in_one_sentence(text: str, fragment: str) -> None:
    with pytest.raises(FeedError) as caught:
        _read(text)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


# --- robustness -------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_field = st.sampled_from(
    [
        "pattern",
        "pattern_type",
        "spec_version",
        "valid_until",
        "valid_from",
        "revoked",
        "labels",
        "indicator_types",
        "confidence",
        "name",
        "description",
        "id",
    ]
)
_pattern_text = st.text(alphabet="[]()':=.%_ abcdeflLIKEORAND-1\\", max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(_field, _json | _pattern_text, max_size=6) | _json, max_size=4))
def test_no_object_makes_the_parser_raise(objects: list[Any]) -> None:
    for obj in objects:
        if isinstance(obj, dict) and obj.get("type") is None:
            obj["type"] = "indicator"
    records = _read({"type": "bundle", "objects": objects})
    assert all(isinstance(r, Indicator | Rejected | Expired | Skipped) for r in records)
    assert len(records) >= len(objects)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60) | _json.map(json.dumps))
def test_any_text_is_records_or_one_feed_error(text: str) -> None:
    try:
        records = _read(text)
    except FeedError as exc:
        assert str(exc).endswith(".") and "\n" not in str(exc)
    else:
        assert all(isinstance(r, Indicator | Rejected | Expired | Skipped) for r in records)
