"""What the legacy TI API accepts (API.md §2): its kinds, limits, enumerations and text lengths.

``check_definition`` judges a feed's definition before anything is sent, naming the config key
at fault; the client applies the same text limits to every body it builds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from feeds.model import Kind
from importer.errors import ConfigError
from importer.fields import DESCRIPTION, NAME, RECOMMENDED_ACTION, SEVERITY, TITLE
from importer.model import DefinitionSpec
from importer.targets.ti.fields import CATEGORY

__all__ = [
    "BULK_LIMIT",
    "DEFAULT_API_URL",
    "DEFAULT_AUDIENCE",
    "SEVERITIES",
    "TI_TYPES",
    "UNSUPPORTED_KINDS",
    "check_definition",
    "check_texts",
]

DEFAULT_API_URL = "https://ti.securitycenter.windows.com/V1.0/"
DEFAULT_AUDIENCE = "https://graph.windows.net"  # the resource the API's own samples ask a token for (§1)
BULK_LIMIT = 5000  # Actions.BulkUpload takes at most this many entities (atomic)
SEVERITIES = ("Informational", "Low", "Medium", "High")
TI_TYPES: Mapping[Kind, str] = {
    Kind.MD5: "Md5",
    Kind.SHA1: "Sha1",
    Kind.SHA256: "Sha256",
    Kind.IPV4: "IpAddress",
    Kind.IPV6: "IpAddress",
    Kind.DOMAIN: "DomainName",
}
# Why a kind outside TI_TYPES cannot go to this API: the reason a rejected record carries.
UNSUPPORTED_KINDS: Mapping[Kind, str] = {
    Kind.URL: "the ti target has no URL indicator type; use --target mde",
    Kind.CERT_SHA1: "the ti API has no certificate indicators; use --target mde or sentinel",
}
# AlertDefinition's text properties: (wire name, documented limit, the option it comes from).
_TEXT_LIMITS = (
    ("Name", 100, NAME.key),
    ("Title", 120, TITLE.key),
    ("InternalDescription", 350, DESCRIPTION.key),
    ("UxDescription", 500, DESCRIPTION.key),
    ("RecommendedAction", 2000, RECOMMENDED_ACTION.key),
)
_ONE_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")  # the enum is unpublished; every value seen is one word


def check_texts(texts: Mapping[str, str | None]) -> None:
    """Refuse a definition text (by wire name) the API would refuse: empty, or over its length."""
    for wire, limit, key in _TEXT_LIMITS:
        value = texts.get(wire)
        if value is None:
            continue
        if not value.strip() and wire != "RecommendedAction":
            raise ConfigError(f"key {key!r} is empty (the TI API requires {wire})")
        if len(value) > limit:
            raise ConfigError(
                f"key {key!r} is {len(value)} characters long; the TI API allows at most {limit} for {wire}"
            )


def check_definition(spec: DefinitionSpec) -> None:
    """Refuse, as one ConfigError sentence naming the key, a definition the TI API would refuse."""
    check_texts(
        {
            "Name": spec.name,
            "Title": spec[TITLE],
            "InternalDescription": spec[DESCRIPTION],
            "UxDescription": spec[DESCRIPTION],
            "RecommendedAction": spec[RECOMMENDED_ACTION],
        }
    )
    if spec[SEVERITY] not in SEVERITIES:
        raise ConfigError(f"key 'severity' must be one of {', '.join(SEVERITIES)}, got {spec[SEVERITY]!r}")
    if not _ONE_WORD.fullmatch(spec[CATEGORY]):
        raise ConfigError(
            f"key 'category' must be one word such as Malware or Trojan, got {spec[CATEGORY]!r}"
        )
