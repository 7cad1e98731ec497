"""OData query options: a small ``$filter`` (``eq`` joined by ``and``), ``$top``/``$skip``/``$count``,
``$select``, and server-driven paging with ``@odata.nextLink``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from yarl import URL

from importer.emulator.replies import ApiError

__all__ = ["Clause", "Page", "Query", "paginate", "parse_filter", "parse_query", "select_fields"]

Literal = str | int | bool | None
Clause = tuple[str, Literal]

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+)(?![\w.])|(?P<word>[A-Za-z_][\w/]*)|(?P<other>\S))"
)
_SUPPORTED = frozenset(("$filter", "$top", "$skip", "$count", "$select"))


def _bad(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def parse_filter(text: str, properties: frozenset[str]) -> list[Clause]:
    """``Prop eq literal [and Prop eq literal ...]`` -> clauses; anything else is a 400."""
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            break
        kind = match.lastgroup or "other"
        tokens.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    clauses: list[Clause] = []
    index = 0
    while True:
        if index + 3 > len(tokens):
            raise _bad(f"$filter {text!r} is not supported: use 'Property eq value' joined with 'and'.")
        (kind, prop), (_, op), (lit_kind, lit) = tokens[index:index + 3]
        if kind != "word" or prop not in properties:
            raise _bad(f"$filter: unknown property {prop!r}; filterable: {', '.join(sorted(properties))}.")
        if op != "eq":
            raise _bad(f"$filter: operator {op!r} is not supported; only 'eq' (joined with 'and').")
        value: Literal
        if lit_kind == "string":
            value = lit[1:-1].replace("''", "'")
        elif lit_kind == "number":
            value = int(lit)
        elif lit_kind == "word" and lit in ("true", "false"):
            value = lit == "true"
        elif lit_kind == "word" and lit == "null":
            value = None
        else:
            raise _bad(f"$filter: {lit!r} is not a literal (quote strings with single quotes).")
        clauses.append((prop, value))
        index += 3
        if index == len(tokens):
            return clauses
        if tokens[index] != ("word", "and"):
            raise _bad(f"$filter: expected 'and' after a clause, got {tokens[index][1]!r}.")
        index += 1


def _non_negative(name: str, raw: str) -> int:
    if not raw.isdigit():
        raise _bad(f"{name} must be a non-negative integer; got {raw!r}.")
    return int(raw)


@dataclass(frozen=True)
class Query:
    """The parsed query options of one collection request."""

    clauses: list[Clause]
    top: int | None
    skip: int
    count: bool
    select: tuple[str, ...] | None


def parse_query(query: Mapping[str, str], properties: frozenset[str], *, max_top: int | None = None,
                selectable: frozenset[str] | None = None, known: frozenset[str] = _SUPPORTED) -> Query:
    """Validate the ``$`` options (unknown ones are a 400); plain parameters are ignored."""
    for name in query:
        if name.startswith("$") and name not in known:
            raise _bad(f"The query option {name} is not supported.")
    clauses = parse_filter(query["$filter"], properties) if "$filter" in query else []
    top = _non_negative("$top", query["$top"]) if "$top" in query else None
    if top is not None and max_top is not None and top > max_top:
        raise _bad(f"$top must be at most {max_top}; got {top}.")
    skip = _non_negative("$skip", query["$skip"]) if "$skip" in query else 0
    count = False
    if "$count" in query:
        if query["$count"] not in ("true", "false"):
            raise _bad("$count must be true or false.")
        count = query["$count"] == "true"
    select: tuple[str, ...] | None = None
    if "$select" in query:
        select = tuple(s.strip() for s in query["$select"].split(",") if s.strip())
        unknown = [s for s in select if selectable is not None and s not in selectable]
        if unknown or not select:
            raise _bad(f"$select names unknown properties: {', '.join(unknown) or '(none)'}.")
    return Query(clauses, top, skip, count, select)


@dataclass(frozen=True)
class Page:
    """One page of a collection and the link to the next, if any."""

    items: list[Any]
    next_link: str | None


def paginate(items: Iterable[Any], query: Query, page_size: int, url: URL) -> Page:
    """Apply ``$skip``/``$top``, cut at ``page_size``; a nextLink carries on where this page ended."""
    wanted = page_size if query.top is None else min(query.top, page_size)
    taken = list(islice(items, query.skip, query.skip + wanted + 1))
    more = len(taken) > wanted
    del taken[wanted:]
    if not more or (query.top is not None and query.top <= page_size):
        return Page(taken, None)
    params: dict[str, str] = dict(url.query)
    params["$skip"] = str(query.skip + len(taken))
    if query.top is not None:
        params["$top"] = str(query.top - len(taken))
    return Page(taken, str(url.with_query(params)))


def select_fields(entity: Mapping[str, Any], select: tuple[str, ...] | None) -> Mapping[str, Any]:
    return entity if select is None else {k: entity[k] for k in select if k in entity}

