"""STIX 2.x patterns to the flat list of comparisons they hold: a fast path, then stix2-patterns.

A STIX pattern is a boolean expression over comparisons; an importer only needs the
comparisons themselves (each equality on an indicator kind becomes one indicator, whatever
OR/AND/FOLLOWEDBY joins it to). ``comparisons(pattern, version)`` returns them.

The real grammar lives in ``stix2patterns`` (an ANTLR parser, ~0.5 ms a pattern). Nearly
every pattern in real feeds has one simple shape: ``[a:b = 'v' (OR|AND a:b = 'v')*]``,
possibly several such observations joined by OR/AND/FOLLOWEDBY, with parentheses. The fast
path tokenises exactly that subset of the grammar by hand and returns ``None`` on anything
else (qualifiers, comments, other operators or literals, index steps, odd whitespace...), so
the parser decides every case the fast path does not fully understand. Both paths return the
comparisons in the order ``stix2patterns``' ``inspect()`` lists them: grouped by object type in
order of first appearance, document order within a type; tests prove the two paths agree.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

from stix2patterns.exceptions import ParseException
from stix2patterns.inspector import INDEX_STAR
from stix2patterns.v20.pattern import Pattern as Pattern20
from stix2patterns.v21.pattern import Pattern as Pattern21

__all__ = ["MAX_PARSED", "Comparison", "PatternError", "comparisons", "fast_comparisons", "slow_comparisons"]

# The parser's time grows faster than a pattern's length (~0.5 ms for a short one, and ANTLR's
# Python runtime recurses): a pattern longer than this in a shape the fast path does not read is
# rejected instead. Real ones are under 2 KB; long OR-lists take the fast path.
MAX_PARSED = 16 * 1024


class PatternError(ValueError):
    """The pattern is not valid STIX patterning; the message is the parser's."""


class Comparison(NamedTuple):
    """One ``object-type:path op value`` test inside a pattern."""

    object_type: str
    path: tuple[str, ...]  # property names; an index step is its number or "*"
    op: str  # as the grammar spells it: "=", "==", "!=", "NOT =", "LIKE", "IN", ">", ...
    value: str  # a string literal unquoted and unescaped; any other literal as written
    is_string: bool  # whether ``value`` came from a string literal

    def path_text(self) -> str:
        """The object path as a pattern spells it, e.g. ``file:hashes.'SHA-256'``."""
        parts = [p if _IDENT.fullmatch(p) and p not in _KEYWORDS else _quote(p) for p in self.path]
        return f"{self.object_type}:{'.'.join(parts)}"

    def text(self) -> str:
        """The comparison as a pattern spells it (used as a rejected record's raw text)."""
        value = _quote(self.value) if self.is_string else self.value
        return f"{self.path_text()} {self.op} {value}"


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# The lexer's keywords: an unquoted path step spelled like one is not an identifier to it.
_KEYWORDS = frozenset(
    {
        *("AND", "OR", "NOT", "FOLLOWEDBY", "LIKE", "MATCHES", "ISSUPERSET", "ISSUBSET", "EXISTS"),
        *("LAST", "IN", "START", "STOP", "SECONDS", "true", "false", "WITHIN", "REPEATS", "TIMES"),
    }
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING = r"'[^'\\]*+(?:\\['\\][^'\\]*+)*+'"  # the escapes \' and \\ only, as the lexer
_W = r"[ \t\r\n]*"  # only the whitespace every STIX lexer skips
_ID = r"[A-Za-z_][A-Za-z0-9_]*+"  # possessive: never split one identifier into two tokens


def _comparison_regex(names: tuple[str, str, str, str]) -> str:
    """``type:path op 'value'`` with the four groups named (``?P<x>``) or not (``?:``)."""
    kind, path, op, value = names
    return (
        rf"({kind}[a-z][a-z0-9-]*){_W}:{_W}({path}{_ID}(?:{_W}\.{_W}(?:{_ID}|{_STRING}))*)"
        rf"{_W}({op}=(?!=)|LIKE\b){_W}({value}{_STRING})"
    )


_NAMED = _comparison_regex(("?P<type>", "?P<path>", "?P<op>", "?P<value>"))
_PLAIN = _comparison_regex(("?:", "?:", "?:", "?:"))
_OBSERVATION = rf"\[{_W}{_PLAIN}(?:{_W}(?:AND|OR)\b{_W}{_PLAIN})*{_W}\]"
# The commonest shape, checked in one match: observations without parentheses.
_SIMPLE = re.compile(rf"{_W}{_OBSERVATION}(?:{_W}(?:AND|OR|FOLLOWEDBY)\b{_W}{_OBSERVATION})*{_W}")
_COMPARISON = re.compile(_NAMED)
_SINGLE = re.compile(rf"{_W}\[{_W}{_NAMED}{_W}\]{_W}")  # the commonest of all: one comparison
# One token of the shapes the fast path understands, for patterns with parentheses.
_TOKEN = re.compile(rf"{_W}(?:{_NAMED}|(?P<punct>[][()])|(?P<keyword>AND|OR|FOLLOWEDBY)\b)")
_STEP = re.compile(rf"[ \t\r\n]*\.?[ \t\r\n]*({_STRING}|[A-Za-z_][A-Za-z0-9_]*)")
_TRAILING_SPACE = re.compile(r"[ \t\r\n]*\Z")


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    if "\\" in body:
        body = body.replace("\\'", "'").replace("\\\\", "\\")
    return body


@lru_cache(maxsize=1024)
def _split_path(path: str) -> tuple[str, ...] | None:
    """Path steps, or None when an unquoted step is a keyword (the lexer would not accept it)."""
    if "." not in path:
        return None if path in _KEYWORDS else (path,)
    steps: list[str] = []
    for match in _STEP.finditer(path):
        step = match.group(1)
        if step[0] == "'":
            steps.append(_unquote(step))
        elif step in _KEYWORDS:
            return None
        else:
            steps.append(step)
    return tuple(steps)


def fast_comparisons(pattern: str) -> list[Comparison] | None:
    """The comparisons of a simple-shaped pattern, or None when it is not one (ask the parser).

    Accepts observations ``[...]`` joined by OR/AND/FOLLOWEDBY, comparisons ``type:path = 'v'``
    or ``LIKE 'v'`` joined by OR/AND inside them, and balanced parentheses at both levels.
    """
    single = _SINGLE.fullmatch(pattern)
    if single is not None:
        object_type, path_text, op, literal = single.groups()
        path = _split_path(path_text)
        if path is None or object_type in _KEYWORDS:
            return None
        return [Comparison(object_type, path, op, _unquote(literal), True)]
    if _SIMPLE.fullmatch(pattern):
        return _simple(pattern)
    return _parenthesised(pattern)


def _parenthesised(pattern: str) -> list[Comparison] | None:
    """``fast_comparisons`` for the shapes with parentheses: a token at a time, checking the order."""
    found: list[Comparison] = []
    in_observation = False
    expect_operand = True
    depth = [0, 0]  # open parentheses outside an observation [0] and inside the current one [1]
    pos = 0
    match_token = _TOKEN.match
    while True:
        token = match_token(pattern, pos)
        if token is None:
            break
        pos = token.end()
        if token.group("value") is not None:
            if not (in_observation and expect_operand):
                return None
            object_type = token.group("type")
            path = _split_path(token.group("path"))
            if path is None or object_type in _KEYWORDS:
                return None
            value = _unquote(token.group("value"))
            found.append(Comparison(object_type, path, token.group("op"), value, True))
            expect_operand = False
        elif (keyword := token.group("keyword")) is not None:
            if expect_operand or (in_observation and keyword == "FOLLOWEDBY"):
                return None
            expect_operand = True
        else:
            punct = token.group("punct")
            if punct == "[":
                if in_observation or not expect_operand:
                    return None
                in_observation = True
            elif punct == "]":
                if not in_observation or expect_operand or depth[1]:
                    return None
                in_observation = False
            elif punct == "(":
                if not expect_operand:
                    return None
                depth[in_observation] += 1
            else:  # ")"
                if expect_operand or not depth[in_observation]:
                    return None
                depth[in_observation] -= 1
    if in_observation or expect_operand or depth[0] or not _TRAILING_SPACE.match(pattern, pos):
        return None
    return _grouped(found)


def _simple(pattern: str) -> list[Comparison] | None:
    """The comparisons of a pattern ``_SIMPLE`` matched: between them is only ``[ ] AND OR``..."""
    found: list[Comparison] = []
    for match in _COMPARISON.finditer(pattern):
        object_type, path_text, op, literal = match.groups()
        path = _split_path(path_text)
        if path is None or object_type in _KEYWORDS:
            return None
        found.append(Comparison(object_type, path, op, _unquote(literal), True))
    return _grouped(found)


def _grouped(found: list[Comparison]) -> list[Comparison]:
    """Group by object type in order of first appearance, as ``inspect()`` reports them."""
    types = {c.object_type for c in found}
    if len(types) <= 1:
        return found
    order: dict[str, list[Comparison]] = {}
    for comparison in found:
        order.setdefault(comparison.object_type, []).append(comparison)
    return [c for group in order.values() for c in group]


def _path_step(step: Any) -> str:
    if step is INDEX_STAR:
        return "*"
    return str(step)


def slow_comparisons(pattern: str, version: str = "2.1") -> list[Comparison]:
    """The comparisons according to ``stix2patterns``; raises ``PatternError`` if it is invalid.

    ``version`` picks the grammar ("2.0" or "2.1"); a pattern only the other grammar accepts is
    read with that one, since feeds mislabel their versions and the comparisons are the same.
    """
    first, second = (Pattern20, Pattern21) if version == "2.0" else (Pattern21, Pattern20)
    try:
        data = _inspect(first, pattern)
    except PatternError:
        try:
            data = _inspect(second, pattern)
        except PatternError:
            pass
        else:
            return data
        raise
    return data


def _inspect(pattern_class: Any, pattern: str) -> list[Comparison]:
    try:
        inspected = pattern_class(pattern).inspect()
    except ParseException as exc:
        raise PatternError(f"not a valid STIX pattern: {exc}") from None
    except Exception as exc:  # the ANTLR runtime may raise anything on hostile input; never crash
        raise PatternError(f"not a valid STIX pattern ({type(exc).__name__})") from None
    out: list[Comparison] = []
    for object_type, tests in inspected.comparisons.items():
        for path, op, literal in tests:
            is_string = literal.startswith("'")
            value = _unquote(literal) if is_string else literal
            out.append(Comparison(object_type, tuple(_path_step(s) for s in path), op, value, is_string))
    return out


def comparisons(pattern: str, version: str = "2.1") -> list[Comparison]:
    """The comparisons of ``pattern``: the fast path when it understands it, else the parser."""
    found = fast_comparisons(pattern)
    if found is not None:
        return found
    if len(pattern) > MAX_PARSED:
        raise PatternError(
            f"a pattern of {len(pattern):,} characters in a shape only the full STIX grammar reads; "
            f"the parser takes patterns of up to {MAX_PARSED:,}"
        )
    return slow_comparisons(pattern, version)
