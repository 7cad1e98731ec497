"""Edge cases of the CSV reader: dialects, banners, headers, layouts, cells and origins."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from feeds.csvfeed import parse
from feeds.model import FeedError, Indicator, Record, Rejected, Skipped
from feeds.options import FeedOptions

SHA256 = "0d0ae934e46b821fec45c7e3f4e3baea4e72a038138f3854a56a6f1eb31dfc6c"
SHA1 = "130cc8936003d15c012928d013df828f77d6970a"
MD5 = "5b8ff6346021854ff5e1c2ecdd7fcbe2"
IMPHASH = "f34d5f2d4577ed6d9ceec516c1f5a744"


def records(text: str, columns: str | None = None) -> list[Record]:
    return list(parse(io.StringIO(text, newline=""), "t.csv", FeedOptions(columns=columns)))


def found(text: str, columns: str | None = None) -> list[tuple[str, str, str]]:
    """(kind, value, origin) of the indicators, in order."""
    return [(str(r.kind), r.value, r.origin) for r in records(text, columns) if isinstance(r, Indicator)]


def rejected(text: str, columns: str | None = None) -> list[Rejected]:
    return [r for r in records(text, columns) if isinstance(r, Rejected)]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(delimiter: str) -> None:
    note = "one two" if delimiter == "," else "one, two"
    text = f"url{delimiter}note\nhttp://a.example/x{delimiter}{note}\nhttp://b.example/{delimiter}three\n"
    recs = records(text)
    assert [(r.value, r.description) for r in recs if isinstance(r, Indicator)] == [
        ("http://a.example/x", note),
        ("http://b.example/", "three"),
    ]


def test_semicolon_file_whose_notes_hold_commas_everywhere() -> None:
    text = "ip;malware;note\n1.2.3.4;Dridex;a, b\n5.6.7.8;Emotet;c, d\n"
    assert [v for _, v, _ in found(text)] == ["1.2.3.4", "5.6.7.8"]


def test_crlf_lf_and_mixed_line_endings_give_physical_lines() -> None:
    text = "ip\r\n1.1.1.1\n2.2.2.2\r\n\r\n3.3.3.3\r4.4.4.4"
    assert found(text) == [
        ("ipv4", "1.1.1.1", "t.csv:2"),
        ("ipv4", "2.2.2.2", "t.csv:3"),
        ("ipv4", "3.3.3.3", "t.csv:5"),
        ("ipv4", "4.4.4.4", "t.csv:6"),
    ]


def test_bom_is_ignored() -> None:
    assert found("\ufeffsha256,note\n" + SHA256 + ",x\n") == [("sha256", SHA256, "t.csv:2")]


def test_quoted_fields_with_commas_newlines_and_doubled_quotes_keep_the_start_line() -> None:
    text = 'domain,note\nevil.example,"a ""quoted"", multi\nline\n# not a comment\nnote"\ngood.example,x\n'
    recs = records(text)
    assert [(r.value, r.origin) for r in recs if isinstance(r, Indicator)] == [
        ("evil.example", "t.csv:2"),
        ("good.example", "t.csv:6"),
    ]
    first = recs[0]
    assert isinstance(first, Indicator)
    assert first.description == 'a "quoted", multi\nline\n# not a comment\nnote'


def test_comma_space_separators_and_commented_header_abuse_ch() -> None:
    text = (
        "################\r\n# MalwareBazaar recent (CSV) #\r\n#\r\n"
        '# "first_seen_utc","sha256_hash","md5_hash","sha1_hash","signature","imphash","ssdeep"\r\n'
        f'"2024-05-07 13:30:18", "{SHA256}", "{MD5}", "{SHA1}", "Formbook", "{IMPHASH}", "3:ab:c/d+e"\r\n'
        f'"2024-05-07 13:31:00", "{SHA256.upper()}", "n/a", "{SHA1}", "n/a", "n/a", "n/a"\r\n'
        "# Number of entries: 2\r\n"
    )
    recs = records(text)
    assert [(str(r.kind), r.origin) for r in recs if isinstance(r, Indicator)] == [
        ("sha256", "t.csv:5"),
        ("md5", "t.csv:5"),
        ("sha1", "t.csv:5"),
        ("sha256", "t.csv:6"),
        ("sha1", "t.csv:6"),
    ]
    assert all(isinstance(r, Indicator) for r in recs)  # imphash/ssdeep/trailer/n/a never read
    assert IMPHASH not in {r.value for r in recs if isinstance(r, Indicator)}
    first = recs[0]
    assert isinstance(first, Indicator)
    assert first.labels == ("Formbook",)
    assert first.first_seen == datetime(2024, 5, 7, 13, 30, 18, tzinfo=UTC)
    last = recs[-1]
    assert isinstance(last, Indicator) and last.labels == ()


def test_banner_uncommented_header_and_trailer_without_final_newline() -> None:
    text = (
        "####\r\n# Feodo Tracker #\r\n#\r\n"
        '"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"\r\n'
        '"2021-01-17 07:44:46","51.178.161.32","4643","online","2021-12-20","Dridex"\r\n'
        '"2021-01-17 07:45:58","51.178.161.32","443","offline","2021-12-01","Dridex"\r\n'
        "# END 2 entries"
    )
    assert found(text) == [("ipv4", "51.178.161.32", "t.csv:5"), ("ipv4", "51.178.161.32", "t.csv:6")]


def test_commented_header_names_the_free_text_column_which_is_never_read() -> None:
    text = "#ip,ioc\n172.21.25.140,TEST DATA\n1.116.160.39,Possible Cobaltstrike C2 IP\n"
    assert records(text) == [
        Indicator(kind="ipv4", value="172.21.25.140", origin="t.csv:2"),  # type: ignore[arg-type]
        Indicator(kind="ipv4", value="1.116.160.39", origin="t.csv:3"),  # type: ignore[arg-type]
    ]


def test_no_header_columns_detected_from_cells() -> None:
    text = f"{SHA256},1.2.3.4,some free text,443\n{MD5},5.6.7.8,more text,80\n"
    assert found(text) == [
        ("sha256", SHA256, "t.csv:1"),
        ("ipv4", "1.2.3.4", "t.csv:1"),
        ("md5", MD5, "t.csv:2"),
        ("ipv4", "5.6.7.8", "t.csv:2"),
    ]


def test_no_header_a_bad_first_row_is_rejected_not_taken_for_a_header() -> None:
    text = "1.2.3.999\n1.2.3.4\n5.6.7.8\n"
    recs = records(text)
    assert isinstance(recs[0], Rejected) and recs[0].origin == "t.csv:1"
    assert len(recs) == 3


def test_unknown_header_names_above_detected_columns() -> None:
    text = "Adresse,Bemerkung\n1.2.3.4,x\n5.6.7.8,y\n"
    assert [v for _, v, _ in found(text)] == ["1.2.3.4", "5.6.7.8"]
    assert rejected(text) == []


def test_header_less_file_name_column_is_not_read_as_domains() -> None:
    text = f"{SHA256},invoice.pdf\n{SHA256},setup.exe\n{SHA256},a.zip\n"
    assert {k for k, _, _ in found(text)} == {"sha256"}


def test_empty_and_null_cells_and_trailing_empty_columns() -> None:
    text = "md5,sha1,,\n" + f"{MD5},n/a,,\n-,{SHA1},,\nN/A,,,\n,,,\n"
    recs = records(text)
    assert [(type(r).__name__, r.origin) for r in recs] == [
        ("Indicator", "t.csv:2"),
        ("Indicator", "t.csv:3"),
        ("Rejected", "t.csv:4"),  # a row with no indicator value at all; ",,," is a blank row
    ]
    assert isinstance(recs[2], Rejected) and recs[2].reason == "no indicator value in this row"


def test_bad_cell_is_rejected_with_the_canonical_reason_and_good_cells_still_yield() -> None:
    bad = SHA256[:63]
    recs = records(f"sha256,md5\n{bad},{MD5}\n")
    assert isinstance(recs[0], Rejected) and recs[0].raw == bad and "63" in recs[0].reason
    assert isinstance(recs[1], Indicator) and recs[1].value == MD5 and recs[1].origin == "t.csv:2"


def test_md5_column_refuses_a_sha1_value() -> None:
    (bad,) = rejected(f"md5\n{SHA1}\n")
    assert bad.raw == SHA1


def test_columns_never_read_reference_links_ids_and_fuzzy_hashes() -> None:
    text = (
        "id,dateadded,url,url_status,threat,tags,urlhaus_link,reporter\n"
        '1,2024-01-01 10:00:00,http://EVIL.example/a.exe,online,malware_download,"elf,mozi",'
        "https://urlhaus.abuse.ch/url/1/,x\n"
    )
    recs = records(text)
    assert len(recs) == 1 and isinstance(recs[0], Indicator)
    assert recs[0].value == "http://evil.example/a.exe"
    assert recs[0].labels == ("elf", "mozi")


def test_scheme_less_url_is_kept_scheme_less() -> None:
    assert found("url\njvtransportes.log.br/kBZqvr6C/3.gif\n") == [
        ("url", "jvtransportes.log.br/kBZqvr6C/3.gif", "t.csv:2")
    ]


def test_typed_layout_sophos_vocabulary_and_description_row() -> None:
    text = (
        "\ufeffIndicator_type,Data,Note\r\n"
        "Description,IoCs related to Qakbot,https://news.example/qakbot/\r\n"
        f"sha256,{SHA256} ,Malicious Excel sheet\r\n"
        "ip,1.2.3.4,C2\r\n"
        "ip_port,1.2.3.4:443,C2\r\n"
        "url,216.238.72.121/t4,C2 URL\r\n"
        "user_agent,Mozilla/5.0 (Windows NT 10.0; WOW64),UA\r\n"
    )
    recs = records(text)
    assert isinstance(recs[0], Skipped) and recs[0].origin == "t.csv:2"
    assert [(str(r.kind), r.value) for r in recs if isinstance(r, Indicator)] == [
        ("sha256", SHA256),
        ("ipv4", "1.2.3.4"),
        ("ipv4", "1.2.3.4"),
        ("url", "216.238.72.121/t4"),
    ]
    assert recs[1].description == "Malicious Excel sheet"  # type: ignore[union-attr]
    (bad,) = [r for r in recs if isinstance(r, Rejected)]
    assert bad.reason == "unsupported indicator type 'user_agent'" and bad.origin == "t.csv:7"


def test_typed_layout_value_first_with_packed_file_hashes() -> None:
    text = f'value,type,description\n"{SHA1},{SHA256},{MD5}",file,sample\nevil.example,hostname,c2\n'
    assert found(text) == [
        ("sha1", SHA1, "t.csv:2"),
        ("sha256", SHA256, "t.csv:2"),
        ("md5", MD5, "t.csv:2"),
        ("domain", "evil.example", "t.csv:3"),
    ]


def test_typed_layout_misp_composites_unsupported_types_and_metadata() -> None:
    text = (
        "uuid,event_id,category,type,value,comment,to_ids,date\n"
        f'a,12,Payload delivery,filename|md5,"x.exe|{MD5}","dropper",1,20161104\n'
        'b,12,Network activity,ip-dst|port,"1.2.3.4|8080","",1,20161104\n'
        'c,12,Network activity,domain|ip,"evil.example|5.6.7.8","",1,20161104\n'
        'd,12,Payload delivery,email-src,"x@evil.example","",1,20161104\n'
        'e,12,External analysis,link,"https://report.example/","",0,20161108\n'
        'f,12,Network activity,domain,"","",1,20161104\n'
        'g,12,Network activity,,"orphan.example","",1,20161104\n'
    )
    recs = records(text)
    assert [(str(r.kind), r.value, r.origin) for r in recs if isinstance(r, Indicator)] == [
        ("md5", MD5, "t.csv:2"),
        ("ipv4", "1.2.3.4", "t.csv:3"),
        ("domain", "evil.example", "t.csv:4"),
        ("ipv4", "5.6.7.8", "t.csv:4"),
    ]
    first = recs[0]
    assert isinstance(first, Indicator)
    assert first.description == "dropper" and first.first_seen == datetime(2016, 11, 4, tzinfo=UTC)
    assert [(r.origin, r.reason) for r in recs if isinstance(r, Rejected)] == [
        ("t.csv:5", "unsupported indicator type 'email-src'"),
        ("t.csv:6", "unsupported indicator type 'link'"),
        ("t.csv:7", "no value for indicator type 'domain'"),
        ("t.csv:8", "no indicator type given for this value"),
    ]


def test_header_less_typed_layout_from_type_words() -> None:
    text = f"sha256,{SHA256},x\ndomain,evil.example,y\nemail,a@b.example,z\n"
    recs = records(text)
    assert [type(r).__name__ for r in recs] == ["Indicator", "Indicator", "Rejected"]


def test_generic_indicator_column_classifies_each_cell() -> None:
    text = f"indicator,first_seen\n{MD5},2024-01-01T00:00:00Z\nhxxp://evil[.]example/x,\n"
    recs = records(text)
    assert [(str(r.kind), r.value) for r in recs if isinstance(r, Indicator)] == [
        ("md5", MD5),
        ("url", "http://evil.example/x"),
    ]
    assert recs[0].first_seen == datetime(2024, 1, 1, tzinfo=UTC)  # type: ignore[union-attr]


def test_no_indicator_columns_is_refused_with_one_sentence() -> None:
    with pytest.raises(FeedError, match=r"^t\.csv: no indicator columns found; name them with --columns$"):
        records("name,colour\nalice,red\nbob,blue\n")


def test_header_only_and_comment_only_files_yield_nothing() -> None:
    assert records("sha256,note\n") == []
    assert records("# nothing here\n#\n") == []
    assert records("") == []


def test_unbalanced_quote_running_past_the_field_limit_is_a_feed_error_with_its_line() -> None:
    text = 'ip\n1.2.3.4\n"5.6.7.8\n' + "x\n" * 70_000
    with pytest.raises(FeedError, match=r"^t\.csv:3: "):
        records(text)


def test_a_long_banner_does_not_hide_the_data() -> None:
    text = "#\n" * 3000 + "ip\n1.2.3.4\n"
    assert found(text) == [("ipv4", "1.2.3.4", "t.csv:3002")]


def test_empty_rows_above_the_header_do_not_shift_it() -> None:
    assert found(f",,,\n   \nmd5,note\n{MD5},x\n") == [("md5", MD5, "t.csv:4")]
