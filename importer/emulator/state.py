"""The emulator's mutable state in one object: store, tokens, fault injectors, counters, limits."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from importer.emulator.config import EmulatorConfig, Faults
from importer.emulator.faults import FAULT_KINDS, FaultInjector
from importer.emulator.ratelimit import SlidingWindow
from importer.emulator.store import Store
from importer.emulator.token_endpoint import token_fault_shape
from importer.emulator.tokens import TokenStore

__all__ = ["EmulatorState", "MdeLimits"]


@dataclass
class MdeLimits:
    """One tenant's MDE rate windows: import and BatchDelete per minute (one window for both),
    BatchDelete per hour, other calls per minute and per hour."""

    imports: SlidingWindow
    batch_deletes_per_hour: SlidingWindow
    per_minute: SlidingWindow
    per_hour: SlidingWindow

    @classmethod
    def for_config(cls, config: EmulatorConfig) -> MdeLimits:
        minute, hour = 60.0 * config.mde_window_scale, 3600.0 * config.mde_window_scale
        return cls(SlidingWindow(config.mde_import_per_minute, minute),
                   SlidingWindow(config.mde_batch_delete_per_hour, hour),
                   SlidingWindow(config.mde_calls_per_minute, minute),
                   SlidingWindow(config.mde_calls_per_hour, hour))


@dataclass
class EmulatorState:
    """Everything a request handler may read or change."""

    config: EmulatorConfig
    store: Store = field(default_factory=Store)
    tokens: TokenStore = field(init=False)
    fault_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))
    requests_by_status: Counter[int] = field(default_factory=Counter)
    api_faults: FaultInjector = field(init=False)
    token_faults: FaultInjector = field(init=False)
    mde_limits: dict[str, MdeLimits] = field(default_factory=dict)
    sentinel_windows: dict[str, SlidingWindow] = field(default_factory=dict)  # by client app id
    base_url: str = ""
    _stamp_millis: int = field(default=-1, init=False, repr=False)  # now_iso's last answer, by ms
    _stamp: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        self.tokens = TokenStore(self.config.clock)
        self.api_faults = FaultInjector(self.config.api_faults, self.config.clock, self.fault_counts)
        self.token_faults = FaultInjector(self.config.token_faults, self.config.clock, self.fault_counts,
                                          token_fault_shape)

    def now_iso(self) -> str:
        """The injected clock as an ISO 8601 UTC timestamp, the shape the APIs' audit fields use."""
        millis = int(self.config.clock() * 1000)
        if millis != self._stamp_millis:  # many writes share a millisecond under load: format once
            stamp = datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")
            self._stamp_millis, self._stamp = millis, stamp.replace("+00:00", "Z")
        return self._stamp

    def limits_for(self, tenant: str) -> MdeLimits:
        limits = self.mde_limits.get(tenant)
        if limits is None:
            limits = self.mde_limits[tenant] = MdeLimits.for_config(self.config)
        return limits

    def sentinel_window(self, client_id: str) -> SlidingWindow:
        """The client app's window of Sentinel uploads (the limit is per app, not per tenant)."""
        window = self.sentinel_windows.get(client_id)
        if window is None:
            config = self.config
            window = self.sentinel_windows[client_id] = SlidingWindow(
                config.sentinel_uploads_per_minute, 60.0 * config.sentinel_window_scale)
        return window

    def set_api_faults(self, faults: Faults) -> None:
        self.api_faults.configure(faults)

    def set_token_faults(self, faults: Faults) -> None:
        self.token_faults.configure(faults)

    def reset(self) -> None:
        """Forget everything stored and counted; fault settings stay (their RNGs restart) and tokens
        already issued stay valid, so a client need not re-authenticate between test cases."""
        self.store.clear()
        self.tokens.issued = 0
        self.requests_by_status.clear()
        for kind in self.fault_counts:
            self.fault_counts[kind] = 0
        self.mde_limits.clear()
        self.sentinel_windows.clear()
        self.api_faults.configure(self.api_faults.faults)
        self.token_faults.configure(self.token_faults.faults)
