"""The per-feed options every target shares, as one declarative table, and the checks rows are built from.

Each row (a ``model.Field``) is a ``[[feed]]`` key of the config file, a flag of ``ti-import run``
(``--key-with-dashes``), a key of the rejects file's ``definition`` and of the JSON report, with
its check and its default. Settings and the command line loop over the rows; nothing else spells
an option out. A target package adds its own rows (``importer.targets.<name>.fields``), and its
``rules`` judge what its API accepts (lengths, enumerations): the rows here judge shape only.

Adding an option: a row here (or in a target's ``fields``), then the code that uses it reads
``spec[ROW]`` or ``feed[ROW]``. See ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from feeds import FORMATS
from feeds.model import Detection, Kind
from feeds.options import DEFAULT_MAX_LINE_BYTES, MIN_LINE_BYTES
from feeds.options import MAX_LINE_BYTES as MAX_LINE_BYTES_LIMIT
from importer.checks import (
    bool_flag,
    env_headers,
    env_name,
    flag_bool,
    int_between,
    int_flag,
    kind_list,
    one_of,
    optional_bool,
    optional_detection,
    positive_int,
    positive_int_flag,
    seconds,
    seconds_flag,
    share,
    share_flag,
    text,
    text_list,
)
from importer.model import DefinitionSpec, Field, Options

__all__ = [
    "ALLOWLIST",
    "ALLOW_PRIVATE",
    "COLUMNS",
    "COMMON",
    "DESCRIPTION",
    "DETECTION_FUNCTION",
    "DOWNLOAD_CONNECT_TIMEOUT",
    "DOWNLOAD_READ_TIMEOUT",
    "DOWNLOAD_TIMEOUT",
    "EXPIRE_DAYS",
    "EXPIRE_REFRESH",
    "FORMAT",
    "FULL",
    "HEADERS",
    "KINDS",
    "LABELS_ANY",
    "LABELS_NONE",
    "MAX_DOWNLOAD_BYTES",
    "MAX_LINE_BYTES",
    "MIN_CONFIDENCE",
    "MIRROR",
    "MISP_FEED",
    "NAME",
    "PAGE_SIZE",
    "PASSWORD_ENV",
    "POLICY_ROWS",
    "RECOMMENDED_ACTION",
    "SEVERITY",
    "SOURCE_FORMATS",
    "TAXII",
    "TITLE",
    "USERNAME",
    "WARNINGLISTS",
    "WARNINGLISTS_EXCLUDE",
    "build_definition",
    "default_definition_name",
    "definition_from_json",
    "definition_to_json",
    "options_of",
]

_NAME_MAX = 100  # a readable default name; no target holds a longer one (ti's Name: 100)


def default_definition_name(source: str) -> str:
    """A feed's default alert definition name: its file name (or URL's last segment)."""
    if source == "-":
        return "stdin"
    path = urlsplit(source).path if "://" in source else source
    return (PurePosixPath(path.replace("\\", "/")).name or source)[:_NAME_MAX]


# -- the rows every target shares ----------------------------------------------------------------

# Formats that are sources rather than file formats: the importer pulls them, incrementally, from
# a TAXII collection (``importer.sources.taxii``) or a MISP feed's folder of events
# (``importer.sources.misp_feed``), so ``feeds`` — which reads files and knows no network — never
# sees them. They share the ``format`` key because that is how a user says what a feed's source is.
TAXII = "taxii"
MISP_FEED = "misp-feed"
SOURCE_FORMATS = (TAXII, MISP_FEED)
FORMAT: Field[str] = Field(
    "format", f"{', '.join((*FORMATS, *SOURCE_FORMATS))} or auto (the default: detected from the content)",
    one_of(("auto", *FORMATS, *SOURCE_FORMATS)), "auto", part="reading",
)  # fmt: skip
COLUMNS: Field[str | None] = Field(
    "columns", "CSV columns, e.g. 'sha256_hash=sha256,3=domain'", text, None, part="reading", metavar="SPEC"
)
MIRROR: Field[bool] = Field(
    "mirror", "delete what the feed no longer lists (--mirror: every feed)", flag_bool, False,
    part="reading", cli=False,
)  # fmt: skip
NAME: Field[str] = Field(
    "name", "alert definition name (default: the feed's file name)", text, "",
    derive=lambda source, _: default_definition_name(source),
)  # fmt: skip
TITLE: Field[str] = Field(
    "title", "alert title", text, "", derive=lambda _, name: f"Threat intelligence: {name}"
)
DESCRIPTION: Field[str] = Field(
    "description", "alert definition description", text, "",
    derive=lambda source, _: f"Indicators imported by ti-importer from {default_definition_name(source)}.",
)  # fmt: skip
SEVERITY: Field[str] = Field(
    "severity", "Informational, Low, Medium (default) or High",
    lambda value: text(value).capitalize(), "Medium",
)  # fmt: skip
RECOMMENDED_ACTION: Field[str | None] = Field(
    "recommended_action", "recommended action shown with the alert", text, None
)
DETECTION_FUNCTION: Field[Detection | None] = Field(
    "detection_function", "Equals, StartWith, EndWith or Contains (default: each indicator's own)",
    optional_detection, None,
)  # fmt: skip
# A century: the expiry must stay a date (a few million days overflow it), and no feed means more.
_EXPIRE_DAYS_MAX = 36_500
_expire_days = int_between(1, _EXPIRE_DAYS_MAX, " days")
EXPIRE_DAYS: Field[int | None] = Field(
    "expire_days", f"indicators expire after N days (1 to {_EXPIRE_DAYS_MAX:,})", _expire_days, None,
    flag_type=int_flag(_expire_days), metavar="N",
)  # fmt: skip

# Rolling expiry: an indicator the feed still lists has its expiry pushed forward once less than
# this share of ``expire_days`` remains, so a nightly run refreshes each one every N x share days
# rather than all of them every night (``importer.pipeline.freshness``).
EXPIRE_REFRESH: Field[float] = Field(
    "expire_refresh", "with --expire-days N: refresh an indicator's expiry once less than this share "
    "of N remains (default 0.5)", share, 0.5, flag_type=share_flag, metavar="SHARE",
)  # fmt: skip


DOWNLOAD_CONNECT_TIMEOUT: Field[float] = Field(
    "download_connect_timeout", "an http(s) feed: seconds to connect (default 10)", seconds, 10.0,
    part="reading", flag_type=seconds_flag, metavar="S",
)  # fmt: skip
DOWNLOAD_READ_TIMEOUT: Field[float] = Field(
    "download_read_timeout", "an http(s) feed: seconds to wait for the next bytes (default 60)", seconds,
    60.0, part="reading", flag_type=seconds_flag, metavar="S",
)  # fmt: skip
DOWNLOAD_TIMEOUT: Field[float] = Field(
    "download_timeout", "an http(s) feed: seconds for the whole download (default 1800)", seconds, 1800.0,
    part="reading", flag_type=seconds_flag, metavar="S",
)  # fmt: skip

# The most an http(s) feed's download writes to disk (``sources.download``): a feed that never
# ends, or is far larger than it should be, stops there instead of filling the disk.
MAX_DOWNLOAD_BYTES: Field[int] = Field(
    "max_download_bytes", "an http(s) feed: the most bytes to download (default 4 GiB)", positive_int,
    4 << 30, part="reading", flag_type=positive_int_flag, metavar="N",
)  # fmt: skip

# The longest list or CSV line read (``feeds.lines``): a longer one is one rejected record, skipped
# unread, so a feed of one endless line costs neither memory nor quadratic time.
_line_bytes = int_between(MIN_LINE_BYTES, MAX_LINE_BYTES_LIMIT)
MAX_LINE_BYTES: Field[int] = Field(
    "max_line_bytes", f"a list or CSV line over N bytes is rejected (default {DEFAULT_MAX_LINE_BYTES:,})",
    _line_bytes, DEFAULT_MAX_LINE_BYTES, part="reading", flag_type=int_flag(_line_bytes), metavar="N",
)  # fmt: skip

# -- authenticated and pulled sources (``importer.sources``) ---------------------------------------

HEADERS: Field[tuple[tuple[str, str], ...]] = Field(
    "headers", 'an http(s) or TAXII feed: headers sent with it, { "Name" = "env:VARIABLE" }', env_headers, (),
    part="reading", cli=False,
)  # fmt: skip
USERNAME: Field[str | None] = Field(
    "username", "an http(s) or TAXII feed: the HTTP Basic user (with --password-env)", text, None,
    part="reading", metavar="USER",
)  # fmt: skip
PASSWORD_ENV: Field[str | None] = Field(
    "password_env", "an http(s) or TAXII feed: the environment variable holding the Basic password",
    env_name, None, part="reading", metavar="VARIABLE",
)  # fmt: skip
FULL: Field[bool] = Field(
    "full", "a TAXII or MISP feed: read it whole, not only what was added since the last run",
    flag_bool, False, part="reading",
)  # fmt: skip
_page_size = int_between(1, 10_000)
PAGE_SIZE: Field[int] = Field(
    "page_size", "a TAXII feed: objects asked per page (limit; default 1,000, a server may answer fewer)",
    _page_size, 1000, part="reading", flag_type=int_flag(_page_size), metavar="N",
)  # fmt: skip

# -- what a feed keeps (``importer.policy``): filters, allowlist, warning lists, private addresses --
# Sent with the definition (not ``reading``): they decide what goes under it, and the producer,
# the rejects file's ``definition`` and the JSON report all see them there.


KINDS: Field[tuple[str, ...]] = Field(
    "kinds", f"keep only indicators of this kind (repeatable): {', '.join(k.value for k in Kind)}",
    kind_list, (), repeat=True, metavar="KIND", flag_name="--kind",
)  # fmt: skip
_confidence = int_between(0, 100)
MIN_CONFIDENCE: Field[int | None] = Field(
    "min_confidence", "keep only indicators of at least this confidence, 0 to 100 (one without any is "
    "filtered)", _confidence, None, flag_type=int_flag(_confidence), metavar="N",
)  # fmt: skip
LABELS_ANY: Field[tuple[str, ...]] = Field(
    "labels_any", "keep only indicators with one of these labels, e.g. tlp:white (repeatable)", text_list,
    (), repeat=True, metavar="LABEL", flag_name="--label-any",
)  # fmt: skip
LABELS_NONE: Field[tuple[str, ...]] = Field(
    "labels_none", "filter out indicators with any of these labels (repeatable)", text_list, (),
    repeat=True, metavar="LABEL", flag_name="--label-none",
)  # fmt: skip
ALLOWLIST: Field[str | None] = Field(
    "allowlist", "a file of values, CIDR ranges and domains (with their subdomains) never imported",
    text, None, metavar="FILE",
)  # fmt: skip
WARNINGLISTS: Field[bool | None] = Field(
    "warninglists", "filter values on the MISP warning lists, true or false (default: true on mde only)",
    optional_bool, None, flag_type=bool_flag, metavar="BOOL",
)  # fmt: skip
WARNINGLISTS_EXCLUDE: Field[tuple[str, ...]] = Field(
    "warninglists_exclude", "a MISP warning list not to filter on, by its name (repeatable)", text_list,
    (), repeat=True, metavar="NAME", flag_name="--warninglist-exclude",
)  # fmt: skip
ALLOW_PRIVATE: Field[bool] = Field(
    "allow_private", "keep private and reserved addresses (RFC 1918, loopback, documentation...): "
    "rarely right", flag_bool, False,
)  # fmt: skip
POLICY_ROWS: tuple[Field[Any], ...] = (
    KINDS, MIN_CONFIDENCE, LABELS_ANY, LABELS_NONE, ALLOWLIST, WARNINGLISTS, WARNINGLISTS_EXCLUDE,
    ALLOW_PRIVATE,
)  # fmt: skip

COMMON: tuple[Field[Any], ...] = (
    FORMAT, COLUMNS, MIRROR, NAME, TITLE, DESCRIPTION, SEVERITY, RECOMMENDED_ACTION, DETECTION_FUNCTION,
    EXPIRE_DAYS, EXPIRE_REFRESH, DOWNLOAD_CONNECT_TIMEOUT, DOWNLOAD_READ_TIMEOUT, DOWNLOAD_TIMEOUT,
    MAX_DOWNLOAD_BYTES, MAX_LINE_BYTES, HEADERS, USERNAME, PASSWORD_ENV, FULL, PAGE_SIZE, *POLICY_ROWS,
)  # fmt: skip


def build_definition(
    rows: Iterable[Field[Any]],
    name: str,
    *,
    source: str = "",
    now: datetime | None = None,
    **given: Any,
) -> DefinitionSpec:
    """A definition of the ``definition`` rows: ``given`` values as they are (already checked),
    defaults for the rest; ``expire_days`` counted from ``now`` into ``expires_at``."""
    values: dict[str, Any] = {}
    for row in rows:
        if row.part != "definition" or row.key == NAME.key:
            continue
        values[row.key] = given.pop(row.key) if row.key in given else row.default_for(source, name)
    if given:
        raise TypeError(f"not an option of these rows: {', '.join(sorted(given))}")
    days = values.get(EXPIRE_DAYS.key)
    expires_at = (now or datetime.now().astimezone()) + timedelta(days=days) if days is not None else None
    return DefinitionSpec(name, Options(values), expires_at)


def options_of(rows: Iterable[Field[Any]], values: Mapping[str, Any]) -> Options:
    """The ``reading`` rows' values (defaults for those not given)."""
    return Options({row.key: values.get(row.key, row.default) for row in rows if row.part == "reading"})


# Keys of the rejects file's ``definition`` written before the fields table named them.
_LEGACY_KEYS = {"detection": DETECTION_FUNCTION.key, "rbac_group_names": "rbac_groups"}


def definition_to_json(spec: DefinitionSpec) -> dict[str, Any]:
    """The definition as the rejects file and the report keep it: name, every option, expiry."""
    out: dict[str, Any] = {"name": spec.name}
    for key, value in spec.options.by_key().items():
        out[key] = list(value) if isinstance(value, tuple) else value
    out["expires_at"] = spec.expires_at.isoformat() if spec.expires_at is not None else None
    return out


def definition_from_json(data: Mapping[str, Any], rows: Iterable[Field[Any]]) -> DefinitionSpec:
    """A definition written by ``definition_to_json``, read with ``rows`` (a run's table);
    ValueError, KeyError or TypeError when it is not one."""
    name = data["name"]
    if not isinstance(name, str) or not name:
        raise ValueError("a definition needs a name")
    given = {_LEGACY_KEYS.get(key, key): value for key, value in data.items()}
    values: dict[str, Any] = {}
    for row in rows:
        if row.part != "definition" or row.key == NAME.key:
            continue
        raw = given.get(row.key)
        values[row.key] = row.default_for("", name) if raw is None else row.check(raw)
    expires = given.get("expires_at")
    return DefinitionSpec(name, Options(values), datetime.fromisoformat(expires) if expires else None)
