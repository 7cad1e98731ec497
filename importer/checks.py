"""The checks per-feed options and settings are built from: a given value -> the checked value, or ValueError.

Each check takes a value as TOML or a flag gives it and returns it checked (converted where a
person writes it loosely: "high" for "High"), or raises ``ValueError("must ...")`` — the end of a
sentence the caller starts with the key or flag at fault. The ``*_flag`` forms are the same checks
as argparse ``type=`` callables. ``importer.fields`` builds its rows from them, as target packages
build theirs; settings use ``check_type`` for their own tables.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from feeds.model import Detection, Kind

__all__ = [
    "ENV_PREFIX",
    "bool_flag",
    "check_type",
    "checked_flag",
    "detection",
    "env_headers",
    "env_name",
    "flag_bool",
    "int_between",
    "int_flag",
    "kind_list",
    "one_of",
    "optional_bool",
    "optional_detection",
    "positive_int",
    "positive_int_flag",
    "seconds",
    "seconds_flag",
    "share",
    "share_flag",
    "text",
    "text_list",
    "type_name",
    "typed",
]

T = TypeVar("T")

# What a type is called in a message to a person ("must be an integer", not "must be a int"):
# the names TOML's own documentation uses for its values.
_TYPE_NAMES: dict[type, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}


def type_name(kind: type | tuple[type, ...]) -> str:
    """``kind`` in words: "an integer", "a string or a number" (a number covers an integer too)."""
    kinds = (kind,) if isinstance(kind, type) else kind
    if float in kinds:
        kinds = tuple(k for k in kinds if k is not int)
    return " or ".join(_TYPE_NAMES.get(k, f"a {k.__name__}") for k in kinds)


def check_type(value: Any, kind: type | tuple[type, ...]) -> Any:
    """``value`` if it is a ``kind`` (one of ``kind``), else ValueError("must be an integer, got ...").

    bool is an int in Python; a TOML ``true`` where a number belongs is still a mistake. TOML
    also has ``nan`` and ``inf``, which no setting means: a NaN timeout never fires, an infinite
    one waits for ever."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"must be {type_name(kind)}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


def typed(kind: type[T]) -> Callable[[Any], T]:
    """A row check: the value as given, if it is a ``kind``."""

    def check(value: Any) -> T:
        checked: T = check_type(value, kind)
        return checked

    return check


def text(value: Any) -> str:
    return typed(str)(value)


def one_of(choices: Iterable[str], *, fold: bool = False) -> Callable[[Any], str]:
    """One of ``choices`` (``fold``: any letter case, answered in the choice's own spelling)."""
    options = tuple(choices)

    def check(value: Any) -> str:
        given = text(value)
        for choice in options:
            if given == choice or (fold and given.lower() == choice.lower()):
                return choice
        raise ValueError(f"must be one of {', '.join(options)}, got {given!r}")

    return check


def positive_int(value: Any) -> int:
    number = typed(int)(value)
    if number < 1:
        raise ValueError(f"must be a positive whole number, got {number}")
    return number


def text_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of non-empty names")
    return tuple(value)


def flag_bool(value: Any) -> bool:
    return typed(bool)(value)


def share(value: Any) -> float:
    """A share strictly between 0 and 1 (a whole number or a decimal)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number between 0 and 1, got {value!r}")
    if not 0 < value < 1:
        raise ValueError(f"must be between 0 and 1 (both excluded), got {value}")
    return float(value)


def detection(value: Any) -> Detection:
    return Detection(one_of((d.value for d in Detection), fold=True)(value))


def optional_detection(value: Any) -> Detection | None:
    return None if value is None else detection(value)


def int_between(low: int, high: int, unit: str = "") -> Callable[[Any], int]:
    """A whole number from ``low`` to ``high`` (``unit``: said after the numbers, e.g. " days")."""

    def check(value: Any) -> int:
        number = typed(int)(value)
        if not low <= number <= high:
            raise ValueError(f"must be between {low:,} and {high:,}{unit}, got {number:,}")
        return number

    return check


def checked_flag(parse: Callable[[str], Any], what: str, check: Callable[[Any], T]) -> Callable[[str], T]:
    """A row's check as an argparse ``type=``: the flag's text parsed (``what`` names the kind in
    the error), then checked; each failure one ``ArgumentTypeError`` sentence."""

    def flag(value: str) -> T:
        try:
            parsed = parse(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {what}: {value!r}") from None
        try:
            return check(parsed)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return flag


def int_flag(check: Callable[[Any], T]) -> Callable[[str], T]:
    """A whole-number row check as an argparse ``type=``."""
    return checked_flag(int, "whole number", check)


positive_int_flag = int_flag(positive_int)  # a whole number of at least 1
share_flag = checked_flag(float, "number", share)  # a share strictly between 0 and 1


# How long an http(s) feed's download may take (``sources.download``); a stop cancels it anyway.
_SECONDS_MAX = 7 * 86_400  # a week: a download any longer is stuck (and 400 digits are no float)


def seconds(value: Any) -> float:
    """A positive number of seconds up to a week (a whole number or a decimal)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= _SECONDS_MAX:
        raise ValueError(
            f"must be a positive number of seconds, got {value!r} (at most {_SECONDS_MAX:,}: a week)"
        )
    return float(value)


seconds_flag = checked_flag(float, "number of seconds", seconds)  # a positive number of seconds


# -- a feed's credentials: named, never held (``importer.sources``) --

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
ENV_PREFIX = "env:"


def env_name(value: Any) -> str:
    """The name of an environment variable (the secret itself never sits in the config)."""
    # The value is not echoed: a secret written where its variable's name belongs stays unshown.
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ValueError("must name an environment variable (letters, digits and _), not hold a value")
    return value


def env_headers(value: Any) -> tuple[tuple[str, str], ...]:
    """A table of HTTP header -> ``"env:VARIABLE"``: each value is read from the environment.

    A literal value is refused: a header a feed needs is a key (abuse.ch's ``Auth-Key``, a bearer
    token), and a config file is copied, committed and shown; an environment variable is not."""
    if not isinstance(value, Mapping):
        raise ValueError('must be a table such as { "Auth-Key" = "env:VARIABLE" }')
    headers = []
    for name, given in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"has {name!r}, which is not an HTTP header name")
        if not isinstance(given, str) or not given.startswith(ENV_PREFIX):
            raise ValueError(
                f'must give each value as "env:VARIABLE" (the secret stays out of the file); '
                f"{name!r} does not"
            )
        headers.append((name, env_name(given.removeprefix(ENV_PREFIX))))
    return tuple(headers)


def kind_list(value: Any) -> tuple[str, ...]:
    """Kind names (``feeds.model.Kind``: md5, ipv4, url...), in any letter case, each once."""
    names = text_list(value)
    known = [kind.value for kind in Kind]
    for name in names:
        if name.lower() not in known:
            raise ValueError(f"must list kinds among {', '.join(known)}, got {name!r}")
    return tuple(dict.fromkeys(name.lower() for name in names))


_BOOLEANS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def _parse_bool(value: str) -> bool:
    try:
        return _BOOLEANS[value.strip().lower()]
    except KeyError:
        raise ValueError(value) from None


bool_flag = checked_flag(_parse_bool, "boolean (true or false)", flag_bool)  # --flag true|false


def optional_bool(value: Any) -> bool | None:
    return None if value is None else flag_bool(value)
