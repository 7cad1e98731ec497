"""The CSV shapes issue 17 found misread, each as a general rule: typed rows read by their type,
a type column under any name, packed hashes, C2/callback/server host columns, certificate
thumbprints (``cert_sha1``) and JA3 fingerprints (rejected with their reason)."""

from __future__ import annotations

import io

import pytest

from feeds import Indicator, Kind, Record, Rejected, read_feed
from feeds.csvvocab import JA3_REASON

MD5, SHA1, SHA256 = "9a0364b9e99bb480dd25e1f0284c8555", "c3499c2729730a7f807efb8676a92dcb6f8a3f8f", "2c" * 32


def read(text: str, name: str = "t.csv") -> list[Record]:
    return list(read_feed(io.BytesIO(text.encode()), "csv", name=name))


def found(records: list[Record]) -> list[tuple[Kind, str]]:
    return [(r.kind, r.value) for r in records if isinstance(r, Indicator)]


def reasons(records: list[Record]) -> list[tuple[str, str]]:
    return [(r.raw, r.reason) for r in records if isinstance(r, Rejected)]


# --- 1. typed rows are read by their type, never guessed from the value -------------------------------
@pytest.mark.parametrize("header", ["type,value", "entity_type,value", "value_kind,value", ""])
def test_file_name_rows_are_rejected_by_their_type_under_any_type_column(header: str) -> None:
    rows = "filename,patch.sh\nfile_name,oto.exe\nfile_path_name,clr_module.dll\nfilename,x.dll\n"
    records = read((header + "\n" if header else "") + rows + "domain,evil.example\n")
    assert found(records) == [(Kind.DOMAIN, "evil.example")]
    assert reasons(records) == [
        ("patch.sh", "unsupported indicator type 'filename'"),
        ("oto.exe", "unsupported indicator type 'file_name'"),
        ("clr_module.dll", "unsupported indicator type 'file_path_name'"),
        ("x.dll", "unsupported indicator type 'filename'"),
    ]


def test_a_type_column_found_by_its_cells_needs_a_value_column_beside_it() -> None:
    # "family" holds words, not types: a plain value column, read by its text.
    records = read("family,value\nEmotet,evil.example\nQakbot,198.51.100.7\n")
    assert found(records) == [(Kind.DOMAIN, "evil.example"), (Kind.IPV4, "198.51.100.7")]


def test_a_named_type_column_finds_its_values_beside_it() -> None:
    records = read("type,ioc_data_x\nmd5,9A0364B9E99BB480DD25E1F0284C8555\nfilename,evil.exe\n")
    assert found(records) == [(Kind.MD5, MD5)]
    assert reasons(records) == [("evil.exe", "unsupported indicator type 'filename'")]


# --- 2. file cells packing several hashes, in any order ---------------------------------------------
@pytest.mark.parametrize(
    "cell", [f"{SHA256},{SHA1},{MD5}", f"{MD5}, {SHA256}, {SHA1}", f"{SHA1} {MD5};{SHA256}"]
)
def test_a_file_cell_yields_each_of_its_hashes(cell: str) -> None:
    records = read(f'entity_type,value\nfile,"{cell}"\ndomain,evil.example\n')
    assert sorted(found(records)) == sorted(
        [(Kind.MD5, MD5), (Kind.SHA1, SHA1), (Kind.SHA256, SHA256), (Kind.DOMAIN, "evil.example")]
    )
    assert len({r.origin for r in records if isinstance(r, Indicator) and r.kind is not Kind.DOMAIN}) == 1


# --- 3. C2 / callback / server columns hold hosts ----------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["C2", "c2", "C&C", "CnC", "CNC", "Callback", "server", "C2 Server", "c&c-server", "callback_host"],
)
def test_host_columns_under_c2_names(name: str) -> None:
    records = read(
        f"family,{name}\nAsyncRAT,203.0.113.17:6606\nDCRat,Panel.Example.org:443\nX,[2001:db8::1]:80\n"
    )
    assert found(records) == [
        (Kind.IPV4, "203.0.113.17"),
        (Kind.DOMAIN, "panel.example.org"),
        (Kind.IPV6, "2001:db8::1"),
    ]


def test_a_c2_cell_holding_a_url_is_a_url_and_c2_status_is_still_not_read() -> None:
    records = read("c2_status,c2\nonline,http://panel.example.org/gate.php\noffline,not a host\n")
    assert found(records) == [(Kind.URL, "http://panel.example.org/gate.php")]
    assert reasons(records) == [("not a host", "not a valid domain name")]


# --- 4. certificate thumbprints are cert_sha1; JA3 is rejected with its reason ----------------------
SSLBL = (
    "################################################################\n"
    "# abuse.ch SSLBL SSL Certificate Blacklist (SHA1 Fingerprints) #\n"
    "################################################################\n"
    "#\n"
    "# Listingdate,SHA1,Listingreason\n"
    f"2024-09-02 06:17:52,{SHA1.upper()},Rhadamanthys C&C\n"
    f"2024-09-02 06:16:33,{SHA256},DCRat C&C\n"
)


def test_an_ssl_certificate_blacklist_holds_certificate_thumbprints() -> None:
    records = read(SSLBL, "sslblacklist.csv")
    first = records[0]
    assert isinstance(first, Indicator) and (first.kind, first.value) == (Kind.CERT_SHA1, SHA1)
    assert first.description == "Rhadamanthys C&C" and first.first_seen is not None
    assert [reason for _, reason in reasons(records)] == [
        "64 hex digits: a certificate fingerprint other than SHA-1; only SHA-1 thumbprints (40 hex digits) "
        "can be imported"
    ]


def test_the_same_columns_without_the_banner_are_file_hashes() -> None:
    records = read(SSLBL.split("# Listingdate", 1)[1].replace(",SHA1,", "Listingdate,SHA1,", 1))
    assert found(records) == [(Kind.SHA1, SHA1)]  # and the SHA-256 rejected: not a sha1


@pytest.mark.parametrize(
    "name", ["cert_sha1", "Certificate", "SSL cert SHA1", "x509_fingerprint_sha1", "thumbprint"]
)
def test_certificate_columns(name: str) -> None:
    colons = ":".join(SHA1[i : i + 2] for i in range(0, 40, 2)).upper()  # openssl's form
    records = read(f"{name},ip\n{SHA1},192.0.2.1\n{colons},192.0.2.2\n")
    assert found(records) == [
        (Kind.CERT_SHA1, SHA1), (Kind.IPV4, "192.0.2.1"), (Kind.CERT_SHA1, SHA1), (Kind.IPV4, "192.0.2.2")
    ]  # fmt: skip


def test_beside_a_certificate_column_a_sha1_column_is_a_file_and_a_certificate_header_makes_it_one() -> None:
    assert found(read(f"sha1,cert_sha1\n{SHA1},{'ab' * 20}\n")) == [
        (Kind.SHA1, SHA1),
        (Kind.CERT_SHA1, "ab" * 20),
    ]
    assert found(read(f"issuer,sha1\nCN=Evil CA,{SHA1}\n")) == [(Kind.CERT_SHA1, SHA1)]
    assert found(read(f"issuer,file_sha1\nCN=Evil CA,{SHA1}\n")) == [(Kind.SHA1, SHA1)]  # named for a file


def test_ja3_is_rejected_with_its_reason_never_read_as_a_file_md5() -> None:
    records = read(f"ja3_md5,Firstseen,Lastseen,Listingreason\n{MD5},2024-04-01,2024-04-30,Emotet\n")
    assert found(records) == [] and reasons(records) == [(MD5, JA3_REASON)]
    typed = read(f"type,value\nja3-fingerprint-md5,{MD5}\nx509-fingerprint-sha1,{SHA1}\nmd5,{MD5}\n")
    assert found(typed) == [(Kind.CERT_SHA1, SHA1), (Kind.MD5, MD5)]
    assert reasons(typed) == [(MD5, JA3_REASON)]
