"""Canonical forms of indicator values, in one place: every parser calls these, none validates.

Each function takes a raw cell or token and returns the canonical value (and kind where the raw
text decides it), or raises ``InvalidValue`` whose message is the rejection reason. The forms:
lower-case hex hashes (kind from length); certificate SHA-1 thumbprints as 40 lower-case hex
digits (openssl's ``AB:CD:...`` pairs joined); refanged text (``hxxp``, ``[.]``, ``(.)``, ``[:]``,
``[://]``); domains lower-cased, IDNA-encoded, without the trailing dot; IPs as ``ipaddress``
prints them; URLs with lower-cased scheme and host, the rest untouched.
"""

from __future__ import annotations

import ipaddress
import re

from feeds.model import Kind

__all__ = [
    "HASH_KINDS",
    "InvalidValue",
    "classify",
    "hash_reason",
    "normalise",
    "normalise_cert_sha1",
    "normalise_domain",
    "normalise_hash",
    "normalise_ip",
    "normalise_url",
    "refang",
]

HASH_KINDS = {32: Kind.MD5, 40: Kind.SHA1, 64: Kind.SHA256}
_HEX = re.compile(r"[0-9a-fA-F]+")
_NON_HEX = re.compile(r"[^0-9a-fA-F]")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+(?:[a-z][a-z0-9-]{{0,61}}[a-z0-9]|xn--[a-z0-9-]{{1,59}})")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PORT = re.compile(r":\d{1,5}")
# A dotted quad already in canonical form (no leading zeros) needs no ipaddress call (~5 us).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_V4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
# Defanging conventions seen in feeds and reports; longest first so '[://]' wins over '[:]'.
_DEFANGS = (
    ("[://]", "://"),
    ("[:]", ":"),
    ("[.]", "."),
    ("(.)", "."),
    ("{.}", "."),
    ("[dot]", "."),
    ("(dot)", "."),
)
_HEX_PAIRS = re.compile(r"[0-9a-fA-F]{2}(?:[: ][0-9a-fA-F]{2})+")  # openssl's fingerprint form
_HXXP = re.compile(r"\bhxxp(s?)(?=\[?:)", re.IGNORECASE)


class InvalidValue(ValueError):
    """The raw text is not a valid value of the kind asked for; the message is the reason."""


def refang(text: str) -> str:
    """Undo the usual defanging (``hxxp``, ``[.]``, ``(.)``, ``[:]``, ``[://]``)."""
    if "[" in text or "(" in text or "{" in text:
        for defanged, plain in _DEFANGS:
            if defanged in text:
                text = text.replace(defanged, plain)
    if "xx" in text or "XX" in text:
        text = _HXXP.sub(lambda m: "http" + m.group(1), text)
    return text


def hash_reason(value: str) -> str:
    """Why ``value`` (stripped, not a valid digest) is no md5/sha1/sha256: length and first bad characters."""
    size = len(value)
    if not value:
        return "empty value"
    bad = sorted(set(_NON_HEX.findall(value)), key=value.index)
    if not bad:
        return f"{size} hex digits, not a valid md5/sha1/sha256 (those have 32, 40 or 64)"
    kind = HASH_KINDS.get(size)
    expected = str(kind) if kind is not None else "md5/sha1/sha256"
    shown = ", ".join(repr(c) for c in bad[:3]) + (" ..." if len(bad) > 3 else "")
    return f"{size} characters, not a valid {expected}: contains non-hex {shown}"


def _looks_like_hash(value: str) -> bool:
    """A long token of (nearly) only hex digits: a mistyped digest, better reported as one."""
    if len(value) >= 16 and _HEX.fullmatch(value):
        return True
    if len(value) < 24 or "." in value or ":" in value or "/" in value:
        return False
    return len(_NON_HEX.findall(value)) <= max(2, len(value) // 16)


def normalise_hash(raw: str) -> tuple[Kind, str]:
    """A hex digest: its kind from its length (32 md5, 40 sha1, 64 sha256), lower-cased."""
    value = raw.strip()
    kind = HASH_KINDS.get(len(value))
    if kind is None or not _HEX.fullmatch(value):
        raise InvalidValue(hash_reason(value))
    return kind, value.lower()


def normalise_cert_sha1(raw: str) -> str:
    """A certificate's SHA-1 thumbprint: 40 hex digits, lower-cased (``AB:CD:...`` pairs joined)."""
    value = raw.strip()
    if _HEX_PAIRS.fullmatch(value):
        value = value.replace(":", "").replace(" ", "")
    if len(value) == 40 and _HEX.fullmatch(value):
        return value.lower()
    if len(value) in (32, 64) and _HEX.fullmatch(value):
        raise InvalidValue(
            f"{len(value)} hex digits: a certificate fingerprint other than SHA-1; "
            "only SHA-1 thumbprints (40 hex digits) can be imported"
        )
    bad = sorted(set(_NON_HEX.findall(value)), key=value.index)
    what = f"contains non-hex {', '.join(repr(c) for c in bad[:3])}" if bad else "it has 40 hex digits"
    raise InvalidValue(f"{len(value)} characters, not a certificate SHA-1 thumbprint: {what}")


def normalise_ip(raw: str) -> tuple[Kind, str]:
    """An IPv4 or IPv6 address in canonical form; a ``:port`` (``[v6]:port``) is dropped."""
    value = refang(raw.strip())
    if _CANONICAL_V4.fullmatch(value):
        return Kind.IPV4, value
    if value.startswith("["):
        end = value.find("]")
        if end > 0 and (end == len(value) - 1 or _PORT.fullmatch(value, end + 1)):
            value = value[1:end]
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
        if port.isdigit():
            value = host
    if "/" in value:
        address, _, prefix = value.partition("/")
        if prefix not in ("32", "128"):
            raise InvalidValue("an address range (CIDR), not a single IP address")
        value = address
    try:
        address_obj = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidValue("not a valid IP address") from None
    kind = Kind.IPV4 if address_obj.version == 4 else Kind.IPV6
    return kind, str(address_obj)


def normalise_domain(raw: str) -> str:
    """A fully-qualified domain name: lower-case, IDNA (punycode), no trailing dot."""
    value = refang(raw.strip()).lower().rstrip(".")
    if not value.isascii():
        try:
            value = value.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidValue("not a valid domain name (IDNA encoding failed)") from None
    if len(value) > 253 or not _DOMAIN.fullmatch(value):
        raise InvalidValue("not a valid domain name")
    return value


def _could_be_ip(text: str) -> bool:
    """Whether ``normalise_ip`` could accept ``text``: IPv4 starts with a digit, IPv6 has a colon."""
    return text[:1].isdigit() or ":" in text or text[:1] == "["


def _canonical_host(host: str) -> str:
    """The host part of a URL (no userinfo), canonical; raises if it is neither name nor IP."""
    port = ""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise InvalidValue("not a valid URL: unbalanced '[' in the host")
        name, port = host[: end + 1], host[end + 1 :]
        _, address = normalise_ip(name)
        name = f"[{address}]"
    else:
        name, sep, digits = host.rpartition(":")
        if sep and digits.isdigit():
            port = ":" + digits
        else:
            name = host
        if _could_be_ip(name):
            try:
                _, name = normalise_ip(name)
            except InvalidValue:
                name = normalise_domain(name)
        else:
            name = normalise_domain(name)
    if port and not _PORT.fullmatch(port):
        raise InvalidValue("not a valid URL: bad port")
    return name + port


def normalise_url(raw: str) -> str:
    """A URL with lower-cased scheme and host; a scheme-less ``host/path`` is kept scheme-less."""
    value = refang(raw.strip())
    if not value or any(c.isspace() for c in value):
        raise InvalidValue("not a valid URL: empty or contains whitespace")
    scheme_match = _SCHEME.match(value)
    prefix = ""
    rest = value
    if scheme_match:
        prefix = scheme_match.group(1).lower() + "://"
        rest = value[scheme_match.end() :]
    cut = len(rest)
    for stop in "/?#":
        at = rest.find(stop)
        if 0 <= at < cut:
            cut = at
    authority, tail = rest[:cut], rest[cut:]
    userinfo, at_sign, host = authority.rpartition("@")
    if not host:
        raise InvalidValue("not a valid URL: no host")
    return prefix + userinfo + at_sign + _canonical_host(host) + tail


def normalise(kind: Kind, raw: str) -> str:
    """The canonical ``raw`` as a value of exactly ``kind``; raises ``InvalidValue`` otherwise."""
    if kind in (Kind.MD5, Kind.SHA1, Kind.SHA256):
        found, value = normalise_hash(raw)
        if found is not kind:
            raise InvalidValue(f"not a {kind} hash: {len(value)} hex digits ({found})")
        return value
    if kind in (Kind.IPV4, Kind.IPV6):
        found, value = normalise_ip(raw)
        if found is not kind:
            raise InvalidValue(f"not an {kind} address ({found})")
        return value
    if kind is Kind.DOMAIN:
        return normalise_domain(raw)
    if kind is Kind.CERT_SHA1:
        return normalise_cert_sha1(raw)
    return normalise_url(raw)


def classify(raw: str) -> tuple[Kind, str]:
    """Decide the kind from the text itself (untyped lists, header-less CSV) and normalise it."""
    value = raw.strip()
    if not value:
        raise InvalidValue("empty value")
    if len(value) in HASH_KINDS and _HEX.fullmatch(value):
        return HASH_KINDS[len(value)], value.lower()
    if _looks_like_hash(value):
        raise InvalidValue(hash_reason(value))
    value = refang(value)
    head, slash, prefix = value.partition("/")
    if slash and prefix.isdigit() and "://" not in value:
        return normalise_ip(value)  # an address with a prefix length, not a URL path
    if "://" in value or slash:
        try:
            return Kind.URL, normalise_url(value)
        except InvalidValue:
            if "://" in value:
                raise
    if _could_be_ip(value):
        try:
            return normalise_ip(value)
        except InvalidValue:
            pass
    try:
        return Kind.DOMAIN, normalise_domain(value)
    except InvalidValue:
        pass
    if "@" in head and not slash:
        raise InvalidValue("an email address: not a supported indicator kind (hash, IP, domain, URL)")
    raise InvalidValue("not a hash, IP address, domain name or URL")
