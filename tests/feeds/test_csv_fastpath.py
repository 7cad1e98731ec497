"""The CSV row loop's shortcuts give exactly what the converters and the model's constructor give.

The loop skips the converter for cells that are already canonical hex (``HEX_KINDS``), builds
indicators through ``Indicator.fast``, and reuses the metadata fields while a row's metadata
cells repeat the row before's. Each test compares with the slow, obvious way.
"""

from __future__ import annotations

import io
import random
import re
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.canonical import InvalidValue
from feeds.csvfeed import parse
from feeds.csvvocab import COLUMN_KINDS, HEX_KINDS, PACKED, any_kind, is_null
from feeds.model import Indicator, Kind, Record, Rejected
from feeds.options import FeedOptions

# One column per converter that has a shortcut: sha256, md5, sha1, hash, hashes (packed), any.
_SPEC = "1=sha256,2=md5,3=sha1,4=hash,5=hashes,6=any,7=first_seen,8=labels"
_CONVERTERS = [COLUMN_KINDS[k] for k in ("sha256", "md5", "sha1", "hash", "hashes")] + [any_kind]
_SEEN = ("2024-05-07 13:30:18", "2024-05-07T13:30:19Z")
_SEEN_AT = (datetime(2024, 5, 7, 13, 30, 18, tzinfo=UTC), datetime(2024, 5, 7, 13, 30, 19, tzinfo=UTC))


def records(text: str, columns: str | None = None) -> list[Record]:
    return list(parse(io.StringIO(text, newline=""), "t.csv", FeedOptions(columns=columns)))


def _expected_row(cell: str, line: int, seen: int, labels: str) -> list[Record]:
    """What the row ``cell`` x 6 must give, by the converters and the dataclass constructor."""
    origin = f"t.csv:{line}"
    tags = tuple(t.strip() for t in labels.split(",") if not is_null(t.strip()))
    stripped = cell.strip()
    out: list[Record] = []
    if is_null(stripped):
        raw = ",".join([cell] * 6 + [_SEEN[seen], labels]).strip()
        return [Rejected(origin, raw, "no indicator value in this row")]
    for convert in _CONVERTERS:
        for value in re.split(r"[\s,;|]+", stripped) if convert in PACKED else [stripped]:
            if not value:
                continue
            try:
                kind, canonical = convert(value)
            except InvalidValue as exc:
                out.append(Rejected(origin, value, str(exc)))
                continue
            out.append(Indicator(kind, canonical, origin, None, tags, None, _SEEN_AT[seen]))
    return out


_CELL = st.one_of(
    st.sampled_from([32, 40, 64]).flatmap(
        lambda n: st.text(alphabet="0123456789abcdef", min_size=n, max_size=n)
    ),
    st.sampled_from([31, 32, 40, 64]).flatmap(
        lambda n: st.text(alphabet="0123456789abcdefABCDEF", min_size=n, max_size=n)
    ),
    st.tuples(
        st.sampled_from(["0" * 32, "a" * 40, "f" * 64]), st.sampled_from("gG ü٣\u00a0"), st.integers(0, 31)
    ).map(lambda t: t[0][: t[2]] + t[1] + t[0][t[2] + 1 :]),
    st.text(alphabet="0123456789abcdefABCDEFg ü٣\u00a0", min_size=30, max_size=66),
    st.sampled_from(["", " ", "n/a", "-", "NULL"]),
)


@settings(max_examples=150, deadline=None)
@given(
    cells=st.lists(_CELL, min_size=1, max_size=4),
    seen=st.lists(st.integers(0, 1), min_size=4, max_size=4),
    labels=st.lists(st.sampled_from(["Formbook", "a, b", "n/a"]), min_size=4, max_size=4),
)
def test_rows_agree_with_the_converters_and_the_constructor(
    cells: list[str], seen: list[int], labels: list[str]
) -> None:
    lines = []
    expected: list[Record] = []
    for line, cell in enumerate(cells, start=1):
        fields = [f'"{cell}"'] * 6 + [_SEEN[seen[line - 1]], f'"{labels[line - 1]}"']
        lines.append(",".join(fields))
        expected += _expected_row(cell, line, seen[line - 1], labels[line - 1])
    assert records("\n".join(lines) + "\n", _SPEC) == expected


def test_every_shortcut_length_is_what_its_converter_returns_unchanged() -> None:
    rng = random.Random(7)
    for convert, kinds in HEX_KINDS.items():
        for size, kind in kinds.items():
            for _ in range(20):
                cell = f"{rng.getrandbits(size * 4):0{size}x}"
                assert convert(cell) == (kind, cell)


def test_upper_case_padded_and_non_ascii_cells_take_the_converter() -> None:
    sha256 = "0d0ae934e46b821fec45c7e3f4e3baea4e72a038138f3854a56a6f1eb31dfc6c"
    arabic = "٣" + sha256[1:]  # a digit int() would take, but not hex
    surrogate = "\ud800" + sha256[1:]  # a lone surrogate (surrogateescape decoding) cannot be encoded
    text = f'sha256\n{sha256.upper()}\n"  {sha256}  "\n{arabic}\n{surrogate}\n'
    got = records(text)
    assert got[:2] == [
        Indicator(Kind.SHA256, sha256, "t.csv:2"),
        Indicator(Kind.SHA256, sha256, "t.csv:3"),
    ]
    assert [(r.origin, r.raw) for r in got[2:] if isinstance(r, Rejected)] == [
        ("t.csv:4", arabic),
        ("t.csv:5", surrogate),
    ]


def test_metadata_follows_each_row_when_it_repeats_changes_or_is_missing() -> None:
    md5 = ["5b8ff6346021854ff5e1c2ecdd7fcbe2", "f34d5f2d4577ed6d9ceec516c1f5a744", "0" * 32, "1" * 32]
    text = (
        "md5,first_seen,signature,comment,score\n"
        f"{md5[0]},2024-05-07 13:30:18,Formbook,seen twice,80\n"
        f"{md5[1]},2024-05-07 13:30:18,Formbook,seen twice,80\n"
        f"{md5[2]}\n"  # a short row: no metadata cells at all
        f"{md5[3]},2024-05-08,n/a,,101\n"
    )
    first_seen = datetime(2024, 5, 7, 13, 30, 18, tzinfo=UTC)
    assert records(text) == [
        Indicator(Kind.MD5, md5[0], "t.csv:2", "seen twice", ("Formbook",), 80, first_seen),
        Indicator(Kind.MD5, md5[1], "t.csv:3", "seen twice", ("Formbook",), 80, first_seen),
        Indicator(Kind.MD5, md5[2], "t.csv:4"),
        Indicator(Kind.MD5, md5[3], "t.csv:5", None, (), None, datetime(2024, 5, 8, tzinfo=UTC)),
    ]
