"""The words CSV feeds use: header names and type vocabularies, each mapped to a converter.

A *converter* turns one stripped cell into ``(kind, canonical value)`` or raises
``InvalidValue`` (whose message is the rejection reason); every converter ends in
``feeds.canonical``. Header names and type words are compared after ``header_key`` /
``type_key`` folding (case, spaces, ``-`` and ``_``), so ``SHA256 Hash``, ``sha256-hash`` and
``sha256_hash`` are one name.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from feeds.canonical import (
    HASH_KINDS,
    InvalidValue,
    classify,
    normalise,
    normalise_cert_sha1,
    normalise_domain,
    normalise_hash,
    normalise_ip,
    normalise_url,
)
from feeds.model import Kind

__all__ = [
    "CERT_CONTEXT",
    "COLUMN_KINDS",
    "FILE_EXTENSIONS",
    "GENERIC_NAMES",
    "HEX_KINDS",
    "JA3_REASON",
    "KNOWN_NAMES",
    "META_NAMES",
    "NON_INDICATOR_TYPES",
    "NULLS",
    "PACKED",
    "SKIP_TYPES",
    "TYPE_KINDS",
    "TYPE_NAMES",
    "VALUE_NAMES",
    "Convert",
    "any_kind",
    "header_key",
    "is_null",
    "is_type_word",
    "type_key",
]

Convert = Callable[[str], tuple[Kind, str]]

# A canonical dotted quad is its own canonical form: this skips ipaddress (~5 us a call) for the
# common case; anything else (ports, v6, leading zeros, defanged) goes to canonical.normalise_ip.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_V4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
_V4_MATCH = _CANONICAL_V4.fullmatch

# Cells meaning "no value" (compared lower-cased; all are at most 4 characters long).
NULLS = frozenset({"", "n/a", "na", "-", "--", "none", "null", "nil", "nan", "?"})


def is_null(cell: str) -> bool:
    """Whether a stripped cell says "no value" (empty, ``n/a``, ``-``, ``null``...)."""
    return not cell or (len(cell) <= 4 and cell.lower() in NULLS)


def header_key(cell: str) -> str:
    """A header name folded for lookup: no quotes, ``#``, case, spaces, ``-`` or ``_`` differences."""
    key = cell.strip().strip("\"'#").strip().lower()
    return re.sub(r"[\s_-]+", "_", key)


def type_key(cell: str) -> str:
    """A type word folded for lookup: lower-case, spaces and ``_`` as ``-`` (MISP spelling)."""
    return cell.strip().lower().replace("_", "-").replace(" ", "-")


def _ip(raw: str) -> tuple[Kind, str]:
    if _V4_MATCH(raw):
        return Kind.IPV4, raw
    return normalise_ip(raw)


def _host(raw: str) -> tuple[Kind, str]:
    """A host name or an IP address (``hostname`` columns hold either)."""
    if _V4_MATCH(raw):
        return Kind.IPV4, raw
    if raw[:1].isdigit() or raw[:1] in ":[":
        try:
            return normalise_ip(raw)
        except InvalidValue:
            pass
    return Kind.DOMAIN, normalise_domain(raw)


def _server(raw: str) -> tuple[Kind, str]:
    """A C2 / callback / server cell: a host (domain or IP) with any ``:port`` dropped, or a URL."""
    if _V4_MATCH(raw):
        return Kind.IPV4, raw
    if "://" in raw or "/" in raw:
        return Kind.URL, normalise_url(raw)
    host, colon, port = raw.rpartition(":")
    if colon and port.isdigit() and ":" not in host and not host.startswith("["):
        raw = host  # "evil.example:443"; an address's port is normalise_ip's to drop
    return _host(raw)


def _cert_sha1(raw: str) -> tuple[Kind, str]:
    return Kind.CERT_SHA1, normalise_cert_sha1(raw)


# JA3 is an MD5 of a TLS *client hello*: it looks like a file MD5 and is no certificate either,
# and no target stores it. Read as MD5 it would block an unrelated file hash: rejected instead.
JA3_REASON = (
    "a JA3 fingerprint (an MD5 of a TLS client hello, not a file hash or certificate): no target stores it"
)


def _ja3(raw: str) -> tuple[Kind, str]:
    raise InvalidValue(JA3_REASON)


def _domain(raw: str) -> tuple[Kind, str]:
    return Kind.DOMAIN, normalise_domain(raw)


def _url(raw: str) -> tuple[Kind, str]:
    return Kind.URL, normalise_url(raw)


def any_kind(raw: str) -> tuple[Kind, str]:
    """Kind decided by the text itself (generic ``indicator`` columns, header-less files)."""
    if _V4_MATCH(raw):
        return Kind.IPV4, raw
    return classify(raw)


def _exactly(kind: Kind) -> Convert:
    """A digest of exactly ``kind``; well-formed hex skips canonical.normalise's checks (same result)."""
    size = next(length for length, hash_kind in HASH_KINDS.items() if hash_kind is kind)
    well_formed = re.compile(f"[0-9a-fA-F]{{{size}}}").fullmatch

    def convert(raw: str) -> tuple[Kind, str]:
        if well_formed(raw):
            return kind, raw.lower()
        return kind, normalise(kind, raw)

    convert.__name__ = f"exactly_{kind}"
    return convert


_MD5, _SHA1, _SHA256 = _exactly(Kind.MD5), _exactly(Kind.SHA1), _exactly(Kind.SHA256)
# A column named for a *file's* SHA-1 stays one in a list of certificates (CERT_CONTEXT).
_FILE_SHA1 = _exactly(Kind.SHA1)


def _hashes(raw: str) -> tuple[Kind, str]:
    """One digest of a packed cell; the caller splits the cell (see ``PACKED``)."""
    return normalise_hash(raw)


def _sha1_as_certificate(convert: Convert) -> Convert:
    """``convert``, with a SHA-1 it finds read as a certificate thumbprint (a certificate list)."""

    def as_certificate(raw: str) -> tuple[Kind, str]:
        kind, value = convert(raw)
        return (Kind.CERT_SHA1, value) if kind is Kind.SHA1 else (kind, value)

    as_certificate.__name__ = f"certificate_{getattr(convert, '__name__', 'convert')}"
    return as_certificate


# Converters whose cells may pack several values ("sha1,sha256,md5" in one Volexity cell).
PACKED: frozenset[Convert] = frozenset({_hashes})

# For each converter, the lengths at which a cell of only lower-case hex digits (no spaces) is a
# digest it returns unchanged, and its kind: the CSV hot loop checks those cells itself and skips
# the call (tests check the converters agree). Converters not listed get no shortcut.
HEX_KINDS: dict[Convert, dict[int, Kind]] = {
    _MD5: {32: Kind.MD5},
    _SHA1: {40: Kind.SHA1},
    _FILE_SHA1: {40: Kind.SHA1},
    _SHA256: {64: Kind.SHA256},
    normalise_hash: dict(HASH_KINDS),
    _hashes: dict(HASH_KINDS),
    any_kind: dict(HASH_KINDS),
}


def _words(text: str) -> list[str]:
    return text.split()


def _names(convert: Convert, words: str) -> dict[str, Convert]:
    return dict.fromkeys(_words(words), convert)


# Header names of the *columns* layout: a column per kind (after header_key folding).
COLUMN_KINDS: dict[str, Convert] = {
    **_names(_MD5, "md5 md5_hash md5hash hash_md5 file_md5 md5sum filehash_md5"),
    **_names(_SHA1, "sha1 sha1_hash sha1hash sha_1 hash_sha1 sha1sum"),
    **_names(_FILE_SHA1, "file_sha1 filehash_sha1 sample_sha1"),
    **_names(
        _SHA256, "sha256 sha256_hash sha256hash sha_256 hash_sha256 file_sha256 sha256sum filehash_sha256"
    ),
    **_names(normalise_hash, "hash file_hash filehash hash_value"),
    **_names(_hashes, "hashes file_hashes"),
    **_names(
        _ip,
        "ip ips ip_address ipaddress ip_addr ipv4 ipv6 ipv4_address ipv6_address dst_ip dest_ip "
        "destination_ip src_ip source_ip c2_ip ip_port ip:port remote_ip server_ip",
    ),
    **_names(_domain, "domain domains domain_name fqdn c2_domain"),
    **_names(_host, "hostname host host_name dst_host"),
    **_names(_url, "url urls uri full_url c2_url dst_url"),
    # Command-and-control columns hold hosts, sometimes with a port or as a URL.
    **_names(
        _server,
        "c2 c&c cnc c_c c_and_c c2s c2_server c2server c2_host c2_hostname c2_address c2_addr "
        "c&c_server c&c_host cnc_server cnc_host cnc_address callback callbacks callback_host "
        "callback_server callback_address callback_domain server servers server_host server_address "
        "c2_ioc c2_indicator",
    ),
    **_names(
        _cert_sha1,
        "cert_sha1 certificate certificate_sha1 cert_sha1_fingerprint certificate_fingerprint "
        "cert_fingerprint cert_thumbprint certificate_thumbprint thumbprint ssl_sha1 ssl_cert_sha1 "
        "tls_cert_sha1 x509_sha1 x509_fingerprint_sha1 sha1_fingerprint ssl_fingerprint cert",
    ),
    **_names(_ja3, "ja3 ja3_md5 ja3_hash ja3_fingerprint ja3s ja3s_md5 ja3s_hash ja3s_fingerprint"),
}
# Names of a column holding indicators of any kind: read only when no column above exists.
GENERIC_NAMES = frozenset(_words("indicator ioc iocs value observable data indicator_value ioc_value entry"))
# The *type + value* layout: a column naming each row's kind, and the value column beside it.
TYPE_NAMES = frozenset(
    _words(
        "type indicator_type ioc_type kind attribute_type observable_type data_type indicatortype ioctype "
        "entity_type entitytype ioc_kind indicator_kind artifact_type artefact_type"
    )
)
VALUE_NAMES = frozenset(
    _words("value data indicator ioc observable indicator_value ioc_value attribute_value")
)
# What a row says about its indicator; the role is the Indicator field it fills.
META_NAMES: dict[str, str] = {
    **dict.fromkeys(_words("description comment comments note notes desc details"), "description"),
    **dict.fromkeys(
        _words(
            "first_seen first_seen_utc firstseen date dateadded date_added created first_seen_date "
            "listingdate listing_date"
        ),
        "first_seen",
    ),
    **dict.fromkeys(_words("listingreason listing_reason"), "description"),
    **dict.fromkeys(_words("tags tag signature malware malware_family family labels"), "labels"),
    **dict.fromkeys(_words("confidence score"), "confidence"),
}
# Columns known *not* to hold indicators: a feed's own links, fuzzy hashes, ids, ports, free text.
_NOT_INDICATORS = frozenset(
    _words(
        "imphash ssdeep tlsh authentihash telfhash gimphash dhash_icon urlhaus_link reference references "
        "link ref id index no num uuid event_id port dst_port src_port reporter file_name filename "
        "file_type file_type_guess mime_type clamav vtpercent last_online last_seen c2_status status "
        "url_status threat category to_ids source name title country asn as_name"
    )
)
KNOWN_NAMES = (
    frozenset(COLUMN_KINDS)
    | GENERIC_NAMES
    | TYPE_NAMES
    | VALUE_NAMES
    | frozenset(META_NAMES)
    | _NOT_INDICATORS
)

# Type words of the *type + value* layout (after type_key folding): Sophos, Volexity, MISP, OTX.
TYPE_KINDS: dict[str, Convert] = {
    **_names(_MD5, "md5 filehash-md5 hash-md5 md5-hash"),
    **_names(_SHA1, "sha1 sha-1 filehash-sha1 hash-sha1 sha1-hash"),
    **_names(_SHA256, "sha256 sha-256 filehash-sha256 hash-sha256 sha256-hash"),
    **_names(normalise_hash, "hash filehash file-hash"),
    **_names(_hashes, "file hashes"),
    **_names(
        _ip,
        "ip ip-dst ip-src ipaddress ip-address ipv4 ipv4-addr ipv4-address ipv6 ipv6-addr ipv6-address "
        "ip-port ip:port ipv4-port address",
    ),
    **_names(_domain, "domain domain-name fqdn"),
    **_names(_host, "hostname host host-name"),
    **_names(_url, "url uri url-full"),
    **_names(_server, "c2 c&c cnc callback server c2-server"),
    **_names(
        _cert_sha1,
        "x509-fingerprint-sha1 cert-sha1 certificate-sha1 ssl-cert-sha1 certificate cert "
        "cert-thumbprint certificate-thumbprint ssl-certificate x509-sha1",
    ),
    **_names(_ja3, "ja3 ja3-fingerprint-md5 ja3-md5 ja3s ja3s-fingerprint-md5 ja3s-md5"),
}
# Type words naming something that is not an indicator kind (MISP, OTX, vendor CSVs): the row is
# rejected with its type named, never read from its value (a file name reads as a domain).
NON_INDICATOR_TYPES = frozenset(
    _words(
        "filename file-name file-path-name filepath file-path path pdb pdb-path directory mutex "
        "email email-src email-dst email-subject email-address email-attachment regkey regkey|value "
        "registry registry-key text link comment user-agent useragent yara sigma snort "
        "vulnerability cve threat-actor campaign-name attachment malware-sample pattern-in-file "
        "ssdeep imphash tlsh impfuzzy pehash authentihash sha512 sha224 sha384 x509-fingerprint-md5 "
        "x509-fingerprint-sha256 jarm-fingerprint hassh-md5 hasshserver-md5 mac-address asn "
        "port btc xmr whois-registrant-email whois-registrant-name size-in-bytes mime-type"
    )
)
# File-name extensions: a header-less column of "invoice.pdf" cells is file names, not domains.
FILE_EXTENSIONS = frozenset(
    _words(
        "exe dll zip rar 7z gz doc docx docm xls xlsx xlsm pdf js vbs ps1 bat cmd scr hta lnk iso img "
        "jar msi bin dat tmp txt elf apk html htm php"
    )
)
# Type words of rows that describe the file rather than name an indicator (Sophos' second row).
SKIP_TYPES = frozenset(_words("description comment note title"))


def is_type_word(cell: str) -> bool:
    """Whether a cell names a type (an indicator's, a known non-indicator's, or a MISP composite):
    a column of them beside a column of values is the *type + value* layout."""
    key = type_key(cell)
    if key in TYPE_KINDS or key in SKIP_TYPES or key in NON_INDICATOR_TYPES:
        return True
    return "|" in key and any(part in TYPE_KINDS for part in key.split("|"))


# In a list of certificates (its banner or header says so), a SHA-1 is a certificate thumbprint.
CERT_CONTEXT: dict[Convert, Convert] = {
    _SHA1: _cert_sha1,
    normalise_hash: _cert_sha1,
    any_kind: _sha1_as_certificate(any_kind),
}
