"""The warning lists' compact tables give the verdicts plain dicts of the package's strings gave, and
their compiled cache on disk reads back the same tables (a corrupt or stale one is ignored).

The reference is the former implementation in a few lines: every kept list's values in dicts
(exact, certificates, host suffixes) filled last name first, its blocks in ``RangeTable``s. The
sample is seeded: entries of every list and type, their subdomains, URLs on them, addresses at
and around every sampled block's edges, and random values."""

from __future__ import annotations

import ipaddress
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feeds.canonical import InvalidValue, classify
from feeds.model import Indicator, Kind
from importer.policy import Policy, wlcache
from importer.policy.hashed import TableBuilder, value_key
from importer.policy.names import find_suffix, url_host
from importer.policy.ranges import Block, RangeTable, address_int, cidr_block
from importer.policy.warninglists import REASON, WarningIndex, warning_index
from importer.policy.warninglists import _build as build_tables

OURS = {"ip-src", "ip-dst", "domain", "hostname", "url", "uri", "link", "md5", "sha1", "sha256",
        "x509-fingerprint-sha1"}  # fmt: skip
CERT = "x509-fingerprint-sha1"
PER_LIST = 40  # sampled entries of each list
Sample = list[tuple[Kind, str]]


class Reference:
    """The former index: the package's strings in dicts, last name first (the first name wins)."""

    def __init__(self, lists: list[dict[str, Any]]) -> None:
        self.exact: dict[str, str] = {}
        self.certs: dict[str, str] = {}
        self.hosts: dict[str, str] = {}
        v4: list[Block] = []
        v6: list[Block] = []
        for item in sorted(lists, key=lambda item: str(item["name"]), reverse=True):
            name, kind = REASON.format(item["name"]), item["type"]
            entries = [entry.lower() for entry in item["list"]]
            attributes = set(item.get("matching_attributes", ()))
            if kind == "cidr":
                for entry in entries:
                    parsed = cidr_block(entry, name)
                    if parsed is not None:
                        (v4 if parsed[0] == 4 else v6).append(parsed[1])
            elif kind == "string":
                if attributes & OURS - {CERT}:
                    self.exact.update(dict.fromkeys(entries, name))
                if CERT in attributes:
                    self.certs.update(dict.fromkeys(entries, name))
            else:
                self.hosts.update(dict.fromkeys((e.removeprefix("*.").strip(".") for e in entries), name))
                if kind == "substring":
                    self.exact.update(dict.fromkeys(entries, name))
        self.v4, self.v6 = RangeTable(v4), RangeTable(v6)

    def address(self, value: str) -> str | None:
        parsed = address_int(value)
        if parsed is None:
            return None
        found = (self.v4 if parsed[0] == 4 else self.v6).find(parsed[1])
        return found or self.exact.get(value)

    def judge(self, kind: Kind, value: str) -> str | None:
        if kind in (Kind.MD5, Kind.SHA1, Kind.SHA256):
            return self.exact.get(value)
        if kind is Kind.CERT_SHA1:
            return self.certs.get(value)
        if kind in (Kind.IPV4, Kind.IPV6):
            return self.address(value)
        if kind is Kind.DOMAIN:
            return self.exact.get(value) or find_suffix(self.hosts, value)
        host = url_host(value)
        found = None
        if host[:1].isdigit() or ":" in host:
            found = self.address(host)
        elif host:
            found = find_suffix(self.hosts, host)
        return found or self.exact.get(value)


def kept_lists() -> list[dict[str, Any]]:
    lists = []
    for file in wlcache.list_files():
        item = json.loads(file.read_text(encoding="utf-8"))
        if item["type"] in ("cidr", "hostname", "string", "substring") and OURS & set(
            item.get("matching_attributes", ())
        ):
            lists.append(item)
    return lists


def sample(lists: list[dict[str, Any]], rng: random.Random) -> Sample:
    values: Sample = []
    for item in lists:
        entries = item["list"]
        for entry in rng.sample(entries, min(PER_LIST, len(entries))):
            values += list(variants(item["type"], entry.lower(), rng))
    for _ in range(2000):  # values on no list (most of them)
        values.append((Kind.SHA256, rng.randbytes(32).hex()))
        values.append((Kind.MD5, rng.randbytes(16).hex()))
        values.append((Kind.DOMAIN, f"c2-{rng.randrange(10**6)}.example-{rng.randrange(999)}.com"))
        values.append((Kind.IPV4, str(ipaddress.IPv4Address(rng.getrandbits(32)))))
        values.append((Kind.IPV6, str(ipaddress.IPv6Address(rng.getrandbits(128)))))
        values.append((Kind.URL, f"http://{ipaddress.IPv4Address(rng.getrandbits(32))}/x"))
    return values


def variants(kind: str, entry: str, rng: random.Random) -> Iterator[tuple[Kind, str]]:
    if kind == "cidr":
        parsed = cidr_block(entry, "")
        if parsed is None:
            return
        version, block = parsed
        cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        top = (1 << (32 if version == 4 else 128)) - 1
        address_kind = Kind.IPV4 if version == 4 else Kind.IPV6
        for number in (
            block.first - 1,
            block.first,
            rng.randint(block.first, block.last),
            block.last,
            block.last + 1,
        ):
            if 0 <= number <= top:
                text = str(cls(number))
                yield address_kind, text
                yield Kind.URL, f"http://{text}/" if version == 4 else f"http://[{text}]/"
        return
    host = entry.removeprefix("*.").strip(".")
    for raw in (entry, f"sub.{host}", f"http://{host}/path", f"https://a.{host}/", f"{host}.evil.example"):
        try:
            value_kind, value = classify(raw)
        except InvalidValue:
            continue
        yield value_kind, value
        if value_kind is Kind.SHA1:
            yield Kind.CERT_SHA1, value


@pytest.fixture(scope="module")
def lists() -> list[dict[str, Any]]:
    return kept_lists()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("journal")


def test_compact_verdicts_equal_the_former_dicts_for_every_type(
    lists: list[dict[str, Any]], cache_dir: Path
) -> None:
    reference = Reference(lists)
    values = sample(lists, random.Random(20261130))
    built = build_tables(wlcache.list_files(), frozenset())  # from the package, whatever loaded before
    assert built.source == "package"
    path = cache_path(cache_dir)
    wlcache.write(path, tables(built), wlcache.list_files(), frozenset())
    cached = wlcache.read(path, wlcache.list_files(), frozenset())
    assert cached is not None
    from_cache = WarningIndex(*cached, source="cache")
    judges = [Policy(warnings=index, private=False).judge for index in (built, from_cache)]
    matched: dict[str, int] = {}
    for kind, value in values:
        expected = reference.judge(kind, value)
        for judge in judges:
            assert judge(Indicator(kind, value, "t:1")) == expected, (kind, value)
        if expected is not None:
            matched[kind.value] = matched.get(kind.value, 0) + 1
    # the sample reaches every table: exact hashes and names, certificates, suffixes, both ranges
    assert {"sha256", "md5", "sha1", "cert_sha1", "domain", "url", "ipv4", "ipv6"} <= set(matched), matched
    assert sum(matched.values()) > 5000


def cache_path(folder: Path) -> Path:
    return wlcache.cache_path(folder, wlcache.list_files(), frozenset())


def tables(index: WarningIndex) -> wlcache.Tables:
    return wlcache.Tables(index.exact, index.certs, index.hosts, index.v4, index.v6, index.lists)


def test_the_cache_reads_back_what_was_written(tmp_path: Path, cache_dir: Path) -> None:
    index = warning_index((), cache_dir)  # built once by the module: this is its memo
    path = cache_path(tmp_path)
    wlcache.write(path, tables(index), wlcache.list_files(), frozenset())
    read = wlcache.read(path, wlcache.list_files(), frozenset())
    assert read is not None
    assert read.exact.words == index.exact.words and read.hosts.heads == index.hosts.heads
    assert list(read.v6.starts) == list(index.v6.starts) and read.v4.ids == index.v4.ids
    assert read.lists == index.lists
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("damage", ["truncated", "flipped", "appended", "garbage", "empty"])
def test_a_corrupt_cache_is_ignored(tmp_path: Path, cache_dir: Path, damage: str) -> None:
    path = cache_path(tmp_path)
    wlcache.write(path, tables(warning_index((), cache_dir)), wlcache.list_files(), frozenset())
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":
        data[-1000] ^= 0x40
    elif damage == "appended":
        data += b"\0"
    elif damage == "garbage":
        data = bytearray(b"not a cache at all")
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    assert wlcache.read(path, wlcache.list_files(), frozenset()) is None


def test_a_cache_for_another_exclusion_or_package_is_stale(tmp_path: Path, cache_dir: Path) -> None:
    files = wlcache.list_files()
    path = cache_path(tmp_path)
    wlcache.write(path, tables(warning_index((), cache_dir)), files, frozenset())
    assert wlcache.read(path, files, frozenset({"some list"})) is None
    assert wlcache.read(path, files[1:], frozenset()) is None  # another package's files
    assert cache_path(tmp_path) != wlcache.cache_path(tmp_path, files, frozenset({"some list"}))


def test_writing_removes_other_versions_and_an_unwritable_folder_is_no_error(
    tmp_path: Path, cache_dir: Path
) -> None:
    old = tmp_path / "misp-warninglists-0.9-f0-0123456789abcdef.bin"
    old.write_bytes(b"an old version")
    path = cache_path(tmp_path)
    wlcache.write(path, tables(warning_index((), cache_dir)), wlcache.list_files(), frozenset())
    assert not old.exists() and path.exists()
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    wlcache.write(
        cache_path(blocked), tables(warning_index((), cache_dir)), wlcache.list_files(), frozenset()
    )


# A fresh process: Policy.of as a run's producer calls it, the cache in argv[1]; prints where the
# lists came from and two verdicts.
CHILD = """
import json, sys
from pathlib import Path
from feeds.model import Indicator, Kind
from importer.fields import build_definition, COMMON
from importer.policy import Policy
policy = Policy.of(build_definition(COMMON, "feed"), "mde", cache_dir=Path(sys.argv[1]))
judge = lambda kind, value: policy.judge(Indicator(kind, value, "t:1"))
print(json.dumps([policy.warnings.source, judge(Kind.IPV4, "8.8.8.8"), judge(Kind.DOMAIN, "evil.example")]))
"""


def load_in_child(folder: Path) -> list[str | None]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, check=True
    )
    answer: list[str | None] = json.loads(done.stdout)
    return answer


def test_a_run_rebuilds_a_corrupt_cache_silently_and_the_next_reads_it(tmp_path: Path) -> None:
    path = cache_path(tmp_path)
    path.write_bytes(b"TIWLCACHE\n" + b"\xff" * 100)  # a cut-off write from long ago
    source, google_dns, kept = load_in_child(tmp_path)
    assert (source, kept) == ("package", None)
    assert google_dns is not None and google_dns.startswith(REASON.format(""))
    assert wlcache.read(path, wlcache.list_files(), frozenset()) is not None  # rewritten
    assert load_in_child(tmp_path) == ["cache", google_dns, None]
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("id_bits", [8, 9])
def test_a_hash_table_names_the_first_list_by_rank_and_only_what_it_holds(id_bits: int) -> None:
    rng = random.Random(id_bits)
    mine = [f"host-{n}.example" for n in range(5000)] + [rng.randbytes(32).hex() for _ in range(5000)]
    theirs = [f"other-{n}.example" for n in range(3000)] + mine[::7]  # some values on both lists
    builder = TableBuilder(id_bits)
    builder.add(mine, 0)  # provisional ids: the order lists are read in
    builder.add(theirs, 1)
    table = builder.build(["list A", "list B"], rank=[1, 0])  # read first, but second by name
    assert len(table) == len(mine) + len(theirs)
    shared = set(mine[::7])
    for value in mine:
        assert table.get(value) == ("list A" if value in shared else "list B")
    assert all(table.get(value) == "list A" for value in theirs)
    assert table.get("host-1.example.") is None and table.get(mine[5000].upper()) is None
    assert all(table.get(rng.randbytes(32).hex()) is None for _ in range(1000))
    assert table.find(value_key(mine[1])) == "list B"  # mine[0] is on both
    assert value_key("ab" * 32) == int("ab" * 8, 16)  # a hex digest is its own key


def test_an_empty_hash_table_holds_nothing() -> None:
    table = TableBuilder(8).build(["list"])
    assert len(table) == 0 and table.get("google.com") is None and table.get("0" * 64) is None
