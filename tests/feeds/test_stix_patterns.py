"""The fast pattern path agrees with stix2-patterns on every shape it accepts, and refuses the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stix2patterns.exceptions import ParseException
from stix2patterns.v20.pattern import Pattern as Pattern20

from feeds.stixpattern import Comparison, PatternError, comparisons, fast_comparisons, slow_comparisons

# --- generators of the simple shapes ---------------------------------------------------------

_space = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n", " \n "])
_object_type = st.sampled_from(
    ["file", "ipv4-addr", "ipv6-addr", "domain-name", "url", "network-traffic", "mutex", "x-custom-1", "a"]
)
_unquoted_step = st.sampled_from(
    ["value", "hashes", "MD5", "SHA256", "SHA1", "dst_ref", "name", "_x9", "Value"]
)
# A string literal's body: any character but ' and \, or the two escapes \' and \\.
_string_body = st.lists(
    st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="'\\")
    | st.sampled_from(["\\'", "\\\\", "%"]),
    max_size=12,
).map("".join)


@st.composite
def _comparison(draw: st.DrawFn) -> str:
    steps = [draw(_unquoted_step)]
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()):
            steps.append(draw(_unquoted_step))
        else:
            steps.append(
                "'" + draw(st.sampled_from(["SHA-256", "SHA-1", "MD5", "a b", "x.y", "it\\'s"])) + "'"
            )
    sep = draw(_space)
    path = (sep + "." + draw(_space)).join(steps) if draw(st.booleans()) else ".".join(steps)
    op = draw(st.sampled_from(["=", " LIKE"]))  # LIKE needs a space after an identifier
    return (
        f"{draw(_object_type)}{draw(_space)}:{draw(_space)}{path}{draw(_space)}{op}"
        f"{draw(_space)}'{draw(_string_body)}'"
    )


def _joined(draw: st.DrawFn, parts: list[str], operators: list[str], parens: bool) -> str:
    text = parts[0]
    for part in parts[1:]:
        gap = draw(st.sampled_from([" ", "  ", "\n"]))
        text = f"{text}{gap}{draw(st.sampled_from(operators))} {part}"
        if parens and draw(st.booleans()):
            text = f"({draw(_space)}{text}{draw(_space)})"
    return text


@st.composite
def simple_pattern(draw: st.DrawFn) -> str:
    """Observations of OR/AND-joined comparisons, joined by OR/AND/FOLLOWEDBY, with parentheses."""
    observations = []
    for _ in range(draw(st.integers(1, 3))):
        inner = [draw(_comparison()) for _ in range(draw(st.integers(1, 4)))]
        body = _joined(draw, inner, ["OR", "AND"], parens=True)
        observations.append(f"[{draw(_space)}{body}{draw(_space)}]")
    return draw(_space) + _joined(draw, observations, ["OR", "AND", "FOLLOWEDBY"], parens=True) + draw(_space)


_token = st.sampled_from(
    [
        "[",
        "]",
        "(",
        ")",
        "AND",
        "OR",
        "FOLLOWEDBY",
        "NOT",
        "==",
        "=",
        "!=",
        "LIKE",
        "MATCHES",
        "IN",
        "EXISTS",
        "WITHIN 5 SECONDS",
        "REPEATS 2 TIMES",
        "'x'",
        "'",
        ":",
        ".",
        "a:b",
        "file:hashes.MD5",
        "ipv4-addr:value = '1.2.3.4'",
        "domain-name:value LIKE '%.evil.com'",
        "true",
        "12",
        "t'2020-01-01T00:00:00Z'",
        "/* c */",
        "ORx",
        "\u00a0",
        "-",
        "a:b.AND",
        "x:y[0]",
    ]
)


@st.composite
def token_soup(draw: st.DrawFn) -> str:
    """Mostly-invalid patterns built from the grammar's own pieces."""
    tokens = draw(st.lists(_token | _comparison(), min_size=1, max_size=9))
    return "".join(t + draw(st.sampled_from(["", " "])) for t in tokens)


def _slow(pattern: str, version: str) -> list[Comparison] | None:
    try:
        return slow_comparisons(pattern, version)
    except PatternError:
        return None


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(simple_pattern())
def test_fast_path_reads_every_simple_shape_as_the_parser_does(pattern: str) -> None:
    fast = fast_comparisons(pattern)
    assert fast is not None, pattern
    assert fast == slow_comparisons(pattern, "2.1")
    assert fast == slow_comparisons(pattern, "2.0")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_soup() | simple_pattern())
def test_fast_path_never_accepts_what_the_parser_refuses(pattern: str) -> None:
    fast = fast_comparisons(pattern)
    slow = _slow(pattern, "2.1")
    if fast is not None:
        assert slow == fast, pattern
    assert comparisons(pattern) == slow if slow is not None else fast is None


def test_every_pattern_in_the_real_feeds_takes_the_fast_path_and_agrees(real_feeds: Path) -> None:
    checked = 0
    for path in sorted((real_feeds / "stix").glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        objects = document["objects"] if isinstance(document, dict) else document
        for obj in objects:
            if obj.get("type") != "indicator" or obj.get("pattern_type", "stix") != "stix":
                continue
            fast = fast_comparisons(obj["pattern"])
            assert fast is not None, obj["pattern"]
            assert fast == slow_comparisons(obj["pattern"], obj.get("spec_version", "2.0"))
            checked += 1
    assert checked == 25 + 17 + 3 + 36


# --- examples ---------------------------------------------------------------------------------


def test_simple_pattern_in_inspect_order_with_quotes_and_escapes_undone() -> None:
    pattern = (
        "[(file:hashes.MD5 = 'AB' OR file:hashes.'SHA-256' = 'CD') AND file:name = 'it\\'s'] "
        "FOLLOWEDBY [ipv4-addr:value = '1.2.3.4'] OR [file:name = 'x\\\\y']"
    )
    assert fast_comparisons(pattern) == [
        Comparison("file", ("hashes", "MD5"), "=", "AB", True),
        Comparison("file", ("hashes", "SHA-256"), "=", "CD", True),
        Comparison("file", ("name",), "=", "it's", True),
        Comparison("file", ("name",), "=", "x\\y", True),
        Comparison("ipv4-addr", ("value",), "=", "1.2.3.4", True),
    ]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (
            "[ipv4-addr:value = '1.2.3.4'] WITHIN 300 SECONDS",
            [("ipv4-addr", ("value",), "=", "1.2.3.4", True)],
        ),
        ("[file:hashes.MD5 != 'ab' /* note */]", [("file", ("hashes", "MD5"), "!=", "ab", True)]),
        ("[network-traffic:dst_port = 443]", [("network-traffic", ("dst_port",), "=", "443", False)]),
        ("[x:refs[*].value == 'v']", [("x", ("refs", "*", "value"), "==", "v", True)]),
        ("[url:value MATCHES '^http']", [("url", ("value",), "MATCHES", "^http", True)]),
        (
            "[ipv4-addr:value IN ('1.1.1.1', '2.2.2.2')]",
            [("ipv4-addr", ("value",), "IN", "('1.1.1.1','2.2.2.2')", False)],
        ),
        (
            "[ipv4-addr:value ISSUBSET '10.0.0.0/8']",
            [("ipv4-addr", ("value",), "ISSUBSET", "10.0.0.0/8", True)],
        ),
    ],
)
def test_shapes_outside_the_fast_path_go_to_the_parser(
    pattern: str, expected: list[tuple[object, ...]]
) -> None:
    assert fast_comparisons(pattern) is None
    assert comparisons(pattern) == [Comparison(*e) for e in expected]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "ipv4-addr:value = '1.2.3.4'",
        "[ipv4-addr:value = '1.2.3.4'",
        "[file:hashes.SHA-256 = 'ab']",
        "[a:b = 'x' or a:b = 'y']",
        "[a:b = 'x'] junk",
        'alert tcp any any -> any any (msg:"x";)',
    ],
)
def test_invalid_patterns_raise_the_parsers_message(pattern: str) -> None:
    assert fast_comparisons(pattern) is None
    with pytest.raises(PatternError, match="not a valid STIX pattern"):
        comparisons(pattern)


def test_a_pattern_only_the_other_grammar_accepts_is_still_read() -> None:
    # NOT EXISTS is STIX 2.1 only; feeds labelled 2.0 (or unlabelled) sometimes use 2.1 syntax.
    pattern = "[ipv4-addr:value = '1.2.3.4' AND NOT EXISTS ipv4-addr:resolves_to_refs]"
    with pytest.raises(ParseException):
        Pattern20(pattern)
    assert comparisons(pattern, "2.0") == [Comparison("ipv4-addr", ("value",), "=", "1.2.3.4", True)]
