"""Reading the TOML config file's tables: the file itself, unknown keys, and typed values, each
mistake one ``ConfigError`` sentence naming the file, the table and the key."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from importer.checks import check_type
from importer.errors import ConfigError

__all__ = ["check_keys", "first_given", "get", "read_config"]


def first_given(*values: int | None) -> int:
    # Not `or`: an explicit 0 in the file is a mistake to report, not a request for the default.
    return next(v for v in values if v is not None)


def read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"the config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"the config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 only: random bytes, or saved as UTF-16
        raise ConfigError(
            f"the config file {path} is not UTF-8 text (byte {exc.start + 1} is not); save it as UTF-8"
        ) from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"the config file {path} nests arrays or tables too deeply") from None
    except ValueError:  # Python's limit on the digits of an int (4,300) is the one known so far
        raise ConfigError(
            f"the config file {path} holds a value that cannot be read, such as a number thousands of "
            "digits long"
        ) from None


def check_keys(table: object, allowed: frozenset[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def get(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.get(key)
    if value is None:
        return None
    try:
        return check_type(value, kind)
    except ValueError as exc:
        raise ConfigError(f"{where}: key {key!r} {exc}") from None
