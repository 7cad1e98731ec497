"""The run's settings as frozen values: what flags, environment and config file resolve to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from importer.model import DefinitionSpec, Field, InFlight, Options
from importer.transport.connection import ConnectionSettings

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "CliOptions",
    "Destination",
    "FeedSettings",
    "OutputOptions",
    "RunSettings",
    "StateOptions",
    "Tuning",
]

T = TypeVar("T")
DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """One feed to import, how to read it, and the alert definition its indicators are grouped under."""

    source: str  # a path, "-" for stdin, or an http(s) URL
    definition: DefinitionSpec
    options: Options = field(default_factory=Options)  # the ``reading`` rows (format, columns, mirror)

    def __getitem__(self, option: Field[T]) -> T:
        return self.options[option]


@dataclass(frozen=True, slots=True)
class Tuning:
    """How hard to push: request mode, batch size, and ``workers`` — the requests in flight."""

    mode: Literal["bulk", "single"] = "bulk"
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int = InFlight().requests

    @property
    def in_flight(self) -> InFlight:
        return InFlight(self.workers)


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything ``ti-import run`` needs, resolved and checked."""

    target: str  # a name in importer.targets.registry
    connection: ConnectionSettings
    feeds: tuple[FeedSettings, ...]
    tuning: Tuning = field(default_factory=Tuning)
    dry_run: bool = False
    retry_from: Path | None = None  # a rejects file whose retryable lines are sent again
    # The [[destination]] table's name; None: a config without them (named after the target).
    destination: str | None = None

    @property
    def name(self) -> str:
        """The destination's name: its table's, else the target's."""
        return self.destination or self.target


@dataclass(frozen=True, slots=True)
class Destination:
    """One tenant and target a run imports into: its name (a ``[[destination]]`` table's, or the
    target's when the config has none) and its own settings (connection, feeds, tuning)."""

    name: str
    settings: RunSettings


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """Where a run's results go (all from the command line)."""

    report: Path | None = None
    rejects: Path | None = None
    progress: bool = True
    quiet: bool = False  # no summary table on stdout (cron)
    metrics: Path | None = None  # --metrics-file: the Prometheus textfile, written however the run ends


@dataclass(frozen=True, slots=True)
class StateOptions:
    """The state journal and what rides on it: reconciling, the mirror guard, the run lock."""

    path: Path | None = None  # None: no journal; each run lists every definition instead
    reconcile: bool = False  # list the target and repair the journal for every feed
    mirror_max_share: float = 0.5  # most of a definition mirror mode may delete in one run
    force: bool = False  # delete past the guard
    # The folder of the host's run locks (one run per target and tenant, journal or not);
    # None: $XDG_RUNTIME_DIR/ti-importer, else the default journal's folder.
    lock_dir: Path | None = None
    # Where what can be rebuilt is kept between runs (the warning lists' compiled tables);
    # None: beside the journal, and without a journal nowhere (rebuilt each run).
    cache_dir: Path | None = None

    @property
    def cache(self) -> Path | None:
        """The cache's folder this run uses: ``cache_dir``, else the journal's folder, else none."""
        if self.cache_dir is not None:
            return self.cache_dir
        return None if self.path is None else self.path.parent


@dataclass(frozen=True, slots=True)
class CliOptions:
    """What the command line said; ``None`` means "not given" so lower layers may decide."""

    feeds: tuple[str, ...] = ()
    config: Path | None = None
    target: str | None = None
    feed_options: Mapping[str, Any] = field(default_factory=dict)  # per-feed flags given, by row key
    mode: str | None = None
    batch_size: int | None = None
    workers: int | None = None
    rate: str | None = None
    dry_run: bool = False
    retry_from: Path | None = None
    ca_bundle: Path | None = None  # --ca-bundle: roots trusted besides the system's
    allow_http: bool = False  # --allow-http: plain http to other machines too
    window_scale: float | None = None  # --window-scale: a test aid for emulators with scaled windows
    # The target options' flags given (``TargetPackage.options``: --workspace-id...), by option key.
    target_options: Mapping[str, str] = field(default_factory=dict)
    destinations: tuple[str, ...] = ()  # --destination NAME (repeatable): only these; (): all
