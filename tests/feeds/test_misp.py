"""The ``misp`` format: events, lists, restSearch answers; to_ids respected; types to kinds; tags,
info and times carried; detected from content; streaming an event at a time; the real events."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feeds import FeedError, FeedOptions, Indicator, Kind, Record, Rejected, Skipped, misp, read_feed
from feeds.csvvocab import JA3_REASON
from feeds.detect import detect_format
from importer.cli import main

MISP_EVENTS = Path(__file__).resolve().parents[3] / "shared" / "misp-events"
MD5, SHA1 = "9a0364b9e99bb480dd25e1f0284c8555", "c3499c2729730a7f807efb8676a92dcb6f8a3f8f"


def attribute(kind: str, value: str, *, to_ids: Any = True, **more: Any) -> dict[str, Any]:
    return {"type": kind, "value": value, "to_ids": to_ids, **more}


def event(*attributes: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"info": "Test event", "Attribute": list(attributes), **more}


def read(document: Any, *, fmt: str = "auto", **options: Any) -> list[Record]:
    text = json.dumps(document).encode()
    return list(read_feed(io.BytesIO(text), fmt, name="e.json", options=FeedOptions(**options)))


def found(records: list[Record]) -> list[tuple[Kind, str]]:
    return [(r.kind, r.value) for r in records if isinstance(r, Indicator)]


def test_types_map_to_kinds_and_composites_keep_their_indicator_parts() -> None:
    records = read(
        {
            "Event": event(
                attribute("md5", MD5.upper()),
                attribute("filename|sha1", f"invoice.js|{SHA1}"),
                attribute("malware-sample", f"x.exe|{MD5}"),
                attribute("ip-src|port", "192.0.2.1|8080"),
                attribute("ip-dst", "2001:db8::1"),
                attribute("domain|ip", "evil.example|198.51.100.2"),
                attribute("hostname|port", "c2.evil.example|443"),
                attribute("url", "hxxp://evil[.]example/a"),
                attribute("x509-fingerprint-sha1", SHA1.upper()),
            )
        }
    )
    assert found(records) == [
        (Kind.MD5, MD5),
        (Kind.SHA1, SHA1),
        (Kind.MD5, MD5),
        (Kind.IPV4, "192.0.2.1"),
        (Kind.IPV6, "2001:db8::1"),
        (Kind.DOMAIN, "evil.example"),
        (Kind.IPV4, "198.51.100.2"),
        (Kind.DOMAIN, "c2.evil.example"),
        (Kind.URL, "http://evil.example/a"),
        (Kind.CERT_SHA1, SHA1),
    ]
    assert len(records) == 10


def test_to_ids_false_is_skipped_and_other_types_are_rejected_with_their_type() -> None:
    records = read(
        event(
            attribute("link", "https://blog.example/x", to_ids=False),
            attribute("md5", MD5, to_ids="0"),
            attribute("md5", MD5, to_ids="1"),
            attribute("sha1", SHA1, deleted=True),
            attribute("filename", "patch.sh"),
            attribute("regkey|value", "HKLM\\Run|x.exe"),
            attribute("ja3-fingerprint-md5", MD5),
            attribute("sha1", MD5),
        )
    )
    assert [r.what for r in records if isinstance(r, Skipped)] == [
        "a 'link' attribute with to_ids false",
        "a 'md5' attribute with to_ids false",
        "a deleted 'sha1' attribute",
    ]
    assert found(records) == [(Kind.MD5, MD5)]
    assert [(r.raw, r.reason) for r in records if isinstance(r, Rejected)] == [
        ("patch.sh", "unsupported indicator type 'filename'"),
        ("HKLM\\Run|x.exe", "unsupported indicator type 'regkey|value'"),
        (MD5, JA3_REASON),
        (MD5, "not a sha1 hash: 32 hex digits (md5)"),
    ]


def test_info_tags_and_times_are_carried() -> None:
    records = read(
        {
            "Event": event(
                attribute(
                    "md5", MD5, uuid="u-1", first_seen="2024-05-01T08:30:00", Tag=[{"name": "kill-chain:C2"}]
                ),
                attribute("sha1", SHA1, uuid="u-2", timestamp="1715000100", Tag=[{"name": "tlp:amber"}]),
                attribute("domain", "evil.example"),
                info="AsyncRAT wave",
                timestamp=1715000000,
                Tag=[{"name": "tlp:amber"}, {"name": 'misp-galaxy:malpedia="AsyncRAT"'}],
            )
        }
    )
    first, second, third = records
    assert isinstance(first, Indicator) and isinstance(second, Indicator) and isinstance(third, Indicator)
    assert first.origin == "e.json:u-1" and third.origin == "e.json:event 1 attribute 3"
    assert first.description == "AsyncRAT wave"
    assert first.labels == ("tlp:amber", 'misp-galaxy:malpedia="AsyncRAT"', "kill-chain:C2")
    assert second.labels == ("tlp:amber", 'misp-galaxy:malpedia="AsyncRAT"')  # no repeat
    assert first.first_seen == datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    assert second.first_seen == datetime.fromtimestamp(1715000100, UTC)
    assert third.first_seen == datetime.fromtimestamp(1715000000, UTC)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda e: {"Event": e},
        lambda e: e,
        lambda e: [{"Event": e}, {"Event": e}],
        lambda e: [e],
        lambda e: {"response": [{"Event": e}]},
        lambda e: {"response": {"Attribute": [{**e["Attribute"][0], "Event": {"info": e["info"]}}]}},
    ],
    ids=["event", "bare event", "list", "bare list", "restSearch", "attribute search"],
)
def test_every_wrapper_is_detected_and_read(wrap: Any) -> None:
    document = wrap(
        event(attribute("md5", MD5), Object=[{"name": "file", "Attribute": [attribute("sha1", SHA1)]}])
    )
    assert detect_format(json.dumps(document), "e.json") == "misp"
    records = read(document)
    indicators = [r for r in records if isinstance(r, Indicator)]
    assert indicators and all(r.description == "Test event" for r in indicators)
    assert {(r.kind, r.value) for r in indicators} <= {(Kind.MD5, MD5), (Kind.SHA1, SHA1)}


def test_stix_is_still_stix_and_json_that_is_not_misp_is_refused() -> None:
    bundle = {"type": "bundle", "id": "bundle--1", "objects": [{"type": "indicator", "Attribute": []}]}
    assert detect_format(json.dumps(bundle), "b.json") == "stix"
    with pytest.raises(FeedError, match=r"e\.json is JSON but not MISP"):
        read({"type": "bundle", "objects": []}, fmt="misp")
    with pytest.raises(FeedError, match=r"e\.json is not valid JSON"):
        list(read_feed(io.BytesIO(b'{"Event": {"info": '), "misp", name="e.json"))


def test_an_event_too_big_is_one_rejected_record_and_the_next_events_are_read() -> None:
    big = event(*[attribute("md5", MD5) for _ in range(200)])
    records = read([big, event(attribute("sha1", SHA1))], max_object_chars=2000)
    assert isinstance(records[0], Rejected) and "more than 2,000 characters" in records[0].reason
    assert found(records[1:]) == [(Kind.SHA1, SHA1)]


def test_events_stream_one_at_a_time() -> None:
    one = event(*[attribute("md5", f"{n:032x}") for n in range(2000)])  # ~100 KB
    text = json.dumps({"response": [{"Event": one}] * 40})  # ~4 MB, read in 1 MiB chunks
    stream = io.StringIO(text)
    records = misp.parse(stream, "e.json", FeedOptions())  # the reader itself, on a text stream
    next(records)
    assert stream.tell() < len(text) // 2  # the first record came before most of the file was read
    assert sum(1 for _ in records) == 40 * 2000 - 1


def test_parse_command_shows_cert_sha1_and_the_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = tmp_path / "event.json"
    document = {
        "Event": event(attribute("x509-fingerprint-sha1", SHA1), attribute("link", "https://x", to_ids=False))
    }
    feed.write_text(json.dumps(document))
    assert main(["parse", str(feed), "--format", "misp"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["kind"] == "cert_sha1"
    assert err == f"{feed}: 1 indicators (cert_sha1 1), 1 distinct, 0 rejected, 0 expired, 1 skipped\n"


# --- the real events of ../shared/misp-events (SOURCES.md's table) ------------------------------------
REAL = {
    "57c4445b-c548-4654-af0b-4be3950d210f.json": ({"md5": 1, "sha1": 1, "sha256": 1}, 2, 4),
    "mainly_objects_1.json": ({"md5": 11, "sha1": 3, "sha256": 3}, 4, 53),
}


@pytest.mark.parametrize("file_name", sorted(REAL))
def test_real_events_reconcile_with_sources_md(file_name: str) -> None:
    path = MISP_EVENTS / file_name
    if not path.is_file():
        pytest.skip(f"real MISP events not found at {MISP_EVENTS}")
    kinds, rejected, skipped = REAL[file_name]
    records = list(read_feed(path, name=file_name))  # detected from content
    distinct = {(r.kind, r.value) for r in records if isinstance(r, Indicator)}
    assert dict(Counter(str(kind) for kind, _ in distinct)) == kinds
    assert sum(isinstance(r, Indicator) for r in records) == sum(kinds.values())
    bad = [r for r in records if isinstance(r, Rejected)]
    assert len(bad) == rejected and all(r.reason.startswith("unsupported indicator type") for r in bad)
    assert sum(isinstance(r, Skipped) for r in records) == skipped
    assert all("tlp:white" in r.labels for r in records if isinstance(r, Indicator))
