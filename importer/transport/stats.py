"""Counters of what crossed the wire, shared by auth, client, retry and rate limiter for the report.

Besides the counters, the one object every request shares carries the run's listeners of pauses
(``pause_listeners``): when the server holds every sender for a while (a 429 with Retry-After),
``paused`` tells them, so progress bars can say why nothing moves. Transport knows nothing of
who listens; the pipeline subscribes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

__all__ = ["PauseListener", "TransportStats"]

PauseListener = Callable[[float, str], None]  # (seconds every sender waits, why: e.g. "throttled")


@dataclass(slots=True)
class TransportStats:
    """Mutable counters for one run; one instance is shared by every request of the run."""

    requests: int = 0  # HTTP requests sent to the target API (token calls not included)
    retries: int = 0  # attempts beyond the first, for any reason
    throttled: int = 0  # 429 answers received
    server_errors: int = 0  # 5xx answers received
    connection_errors: int = 0  # resets, timeouts, refused connections
    token_refreshes: int = 0  # calls to the token endpoint that returned a token
    auth_retries: int = 0  # requests re-sent once after a 401
    lost_writes_recovered: int = 0  # writes whose answer was lost and were checked before re-sending
    # Not a counter: left out of the report and of comparisons.
    pause_listeners: list[PauseListener] = field(default_factory=list, repr=False, compare=False)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pause_listeners"}

    def paused(self, seconds: float, why: str) -> None:
        """Tell the listeners every sender now waits ``seconds`` (a listener must not raise)."""
        for listener in tuple(self.pause_listeners):
            listener(seconds, why)
