"""A target's own run-level settings (``TargetPackage.options``): read from a flag, a variable or
``[target]``, checked, and refused when they belong to another target.

Each option is a row of its target package (``targets.base.TargetOption``); nothing here names
one. Precedence as everywhere: the flag, then the environment variable, then the config file's
``[target]`` key, then the row's default. A flag or a ``[target]`` key of another target's option
is a mistake said in one sentence (``--workspace-id`` with ``--target ti``); its variable is left
alone, since one environment serves every target a user runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from importer.errors import ConfigError
from importer.targets.base import TargetOption, TargetPackage

__all__ = ["check_foreign", "option_keys", "target_options_of", "tenant_scope_of"]


def option_keys(packages: Iterable[TargetPackage]) -> frozenset[str]:
    """Every ``[target]`` key the targets' options add (all targets: a foreign one is refused by name)."""
    return frozenset(option.key for entry in packages for option in entry.options)


def check_foreign(
    target: TargetPackage,
    packages: Iterable[TargetPackage],
    flags: Mapping[str, str],
    table: Mapping[str, Any],
    where: str,
) -> None:
    """Refuse a flag or ``[target]`` key that only another target reads, naming it and its target."""
    own = {option.key for option in target.options}
    for entry in packages:
        for option in entry.options:
            if option.key in own:
                continue
            if option.key in flags and option.flag is not None:
                raise ConfigError(f"{option.flag} applies to the {entry.name} target only, not {target.name}")
            if table.get(option.key) is not None:
                raise ConfigError(
                    f"{where}: key {option.key!r} applies to the {entry.name} target only, not {target.name}"
                )


def target_options_of(
    target: TargetPackage,
    *,
    flags: Mapping[str, str],
    env: Mapping[str, str],
    table: Mapping[str, Any],
    where: str,
    check_url: Callable[[str, str], None],
) -> tuple[tuple[str, str], ...]:
    """The target's options as (key, value) pairs, each from where it was given (see the module).

    ``check_url(url, named)`` judges a URL option as the API URL is judged (https, a port...).
    ``tenant_scope_of`` picks the values that narrow the tenant from the result."""
    values: list[tuple[str, str]] = []
    for option in target.options:
        value, named = _given(option, flags, env, table, where)
        if value is None:
            if option.required:
                raise ConfigError(f"the {target.name} target needs {option.help}: {_ways(option)}")
            continue
        if not value.strip():
            raise ConfigError(f"{named} is empty")
        if option.check is not None:
            try:
                value = option.check(value)
            except ValueError as exc:
                raise ConfigError(f"{named} {exc}") from None
        if option.kind == "url":
            check_url(value, named)
        values.append((option.key, value))
    return tuple(values)


def _given(
    option: TargetOption,
    flags: Mapping[str, str],
    env: Mapping[str, str],
    table: Mapping[str, Any],
    where: str,
) -> tuple[str | None, str]:
    """The option's value and who gave it (for an error), or the default (None: not set)."""
    if option.flag is not None and flags.get(option.key) is not None:
        return flags[option.key], option.flag
    if option.env is not None and env.get(option.env):
        return env[option.env], option.env
    from_file = table.get(option.key)
    if from_file is not None:
        if not isinstance(from_file, str):
            raise ConfigError(f"{where}: key {option.key!r} must be a string, got {type(from_file).__name__}")
        return from_file, f"{where}: key {option.key!r}"
    return option.default, f"the default {option.key}"


def _ways(option: TargetOption) -> str:
    """How to give an option, for the sentence of a missing one."""
    ways = [f"give {option.flag}"] if option.flag else []
    if option.env:
        ways.append(f"set {option.env}")
    ways.append(f"set {option.key} in the config file's [target] table")
    return ", ".join(ways[:-1]) + (" or " if len(ways) > 1 else "") + ways[-1]


def tenant_scope_of(target: TargetPackage, values: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """The values of the options that say where the indicators live (``TargetOption.scopes_tenant``)."""
    scoping = {option.key for option in target.options if option.scopes_tenant}
    return tuple(value for key, value in values if key in scoping)
