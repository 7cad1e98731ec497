"""Counters of what crossed the wire, shared by auth, client, retry and rate limiter for the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["TransportStats"]


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

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
