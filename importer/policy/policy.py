"""One feed's policy: which of its indicators are kept, and why each other one is filtered.

Built once per feed from its options (``importer.fields``: ``kinds``, ``min_confidence``,
``labels_any``/``labels_none``, ``allowlist``, ``warninglists``/``warninglists_exclude``,
``allow_private``); ``judge`` is called once per indicator the feed reads, so everything it looks
at is built beforehand: a frozenset of kinds and of labels, exact dicts, suffix tables for
domains, and integer range tables for addresses (the MISP lists' as 64-bit keys and integer
arrays: ``warninglists``), where the allowlist's and the private blocks share one table per IP
version (the allowlist's reason wins where both hold an address). Kinds nothing checks have no
look-up at all (``checks``). Rules apply in this order: kinds, confidence,
labels, the allowlist, private blocks, the warning lists; the first that matches is the reason, so
a private address an allowlist also holds is reported "on the allowlist".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from feeds.model import Indicator, Kind
from importer.fields import (
    ALLOW_PRIVATE,
    ALLOWLIST,
    KINDS,
    LABELS_ANY,
    LABELS_NONE,
    MIN_CONFIDENCE,
    WARNINGLISTS,
    WARNINGLISTS_EXCLUDE,
)
from importer.model import DefinitionSpec
from importer.policy.allowlist import Allowlist, read_allowlist
from importer.policy.checks import Check, value_checks
from importer.policy.private import private_blocks
from importer.policy.ranges import RangeTable
from importer.policy.warninglists import WarningIndex, warning_index

__all__ = ["WARNINGLISTS_BY_DEFAULT", "Policy"]

_log = logging.getLogger(__name__)

# Targets whose feeds are checked against the warning lists unless they say otherwise: an mde
# indicator is an action on every device (Block), where a listed Google or Microsoft host is an
# outage; elsewhere an indicator only raises alerts, and the lists' load time is not worth it.
WARNINGLISTS_BY_DEFAULT = frozenset({"mde"})


class Policy:
    """``judge(indicator)``: None to keep it, else why it is filtered (the rule or list that matched)."""

    __slots__ = ("judge", "warnings")

    judge: Callable[[Indicator], str | None]

    def __init__(
        self,
        *,
        kinds: tuple[str, ...] = (),
        min_confidence: int | None = None,
        labels_any: tuple[str, ...] = (),
        labels_none: tuple[str, ...] = (),
        allowlist: Allowlist | None = None,
        private: bool = True,
        warnings: WarningIndex | None = None,
    ) -> None:
        self.warnings = warnings  # what was loaded: for a benchmark's or a log's load time
        allow = allowlist or Allowlist("")
        v4, v6 = private_blocks(rank=1) if private else ([], [])
        checks = value_checks(
            dict.fromkeys(allow.exact, allow.reason), allow.domains,
            RangeTable([*allow.v4, *v4]), RangeTable([*allow.v6, *v6]), warnings,
        )  # fmt: skip
        rules = _Rules(
            frozenset(Kind(k) for k in kinds) or None,
            min_confidence,
            frozenset(label.casefold() for label in labels_any) or None,
            frozenset(label.casefold() for label in labels_none) or None,
            f"no label of labels_any ({', '.join(labels_any)})",
        )
        self.judge = _judge(checks) if rules.none() else _judge_with_rules(checks, rules)

    @classmethod
    def of(cls, spec: DefinitionSpec, target: str, *, cache_dir: Path | None = None) -> Policy:
        """The policy of a feed's options (``spec``) on ``target``: the allowlist file read and the
        warning lists loaded now (a ConfigError names a bad allowlist line or an unknown list) —
        from their compiled cache in ``cache_dir`` (the journal's folder) when given."""
        path = spec[ALLOWLIST]
        wanted = spec[WARNINGLISTS]
        if wanted is None:
            wanted = target in WARNINGLISTS_BY_DEFAULT
        exclude: tuple[str, ...] = spec[WARNINGLISTS_EXCLUDE]
        warnings = warning_index(exclude, cache_dir) if wanted else None
        if warnings is not None:
            _log.info("feed %s: %d MISP warning lists (from the %s: read in %.2f s, indexed in %.2f s)",
                      spec.name, len(warnings.lists), warnings.source, warnings.load_seconds,
                      warnings.build_seconds)  # fmt: skip
        return cls(
            kinds=spec[KINDS],
            min_confidence=spec[MIN_CONFIDENCE],
            labels_any=spec[LABELS_ANY],
            labels_none=spec[LABELS_NONE],
            allowlist=read_allowlist(path) if path else None,
            private=not spec[ALLOW_PRIVATE],
            warnings=warnings,
        )


class _Rules(NamedTuple):
    """The rules on an indicator's own fields (None: the rule is off)."""

    kinds: frozenset[Kind] | None
    min_confidence: int | None
    labels_any: frozenset[str] | None
    labels_none: frozenset[str] | None
    labels_any_reason: str

    def none(self) -> bool:
        labels = self.labels_any or self.labels_none
        return self.kinds is None and self.min_confidence is None and not labels


def _judge(checks: dict[Kind, Check]) -> Callable[[Indicator], str | None]:
    """The judge of a feed with no rule on kinds, confidence or labels: the value checks alone."""
    check_of = checks.get

    def judge(indicator: Indicator) -> str | None:
        check = check_of(indicator.kind)
        return None if check is None else check(indicator.value)

    return judge


def _judge_with_rules(checks: dict[Kind, Check], rules: _Rules) -> Callable[[Indicator], str | None]:
    """The rules in order — kinds, confidence, labels — then the value checks."""
    kinds, least, any_of, none_of, any_reason = rules
    confidence_reason = f"confidence below {least} (min_confidence)"
    check_of = checks.get

    def judge(indicator: Indicator) -> str | None:
        kind = indicator.kind
        if kinds is not None and kind not in kinds:
            return f"kind {kind} not in kinds"
        if least is not None:
            confidence = indicator.confidence
            if confidence is None or confidence < least:
                return confidence_reason
        labels = indicator.labels
        if labels and (any_of is not None or none_of is not None):
            folded = [label.casefold() for label in labels]
            if any_of is not None and any_of.isdisjoint(folded):
                return any_reason
            if none_of is not None:
                for label, fold in zip(labels, folded, strict=True):
                    if fold in none_of:
                        return f"label {label} in labels_none"
        elif any_of is not None:  # no label at all: none of labels_any
            return any_reason
        check = check_of(kind)
        return None if check is None else check(indicator.value)

    return judge
