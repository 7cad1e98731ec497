"""The importer's exceptions, classified once at the boundary and decided on by type elsewhere.

    ImporterError
    ├── ConfigError          usage, configuration or an unreadable feed      → exit 2
    ├── AuthError            the token endpoint refused us, or 401 after the one refresh → exit 3
    └── ApiError             the target answered with an error, or never answered
        ├── RetryableError   429, 5xx, 408, connection errors, timeouts: worth another try
        │   ├── ThrottledError     429 (carries the server's Retry-After, in seconds)
        │   └── AmbiguousWriteError the request was sent but no answer came: it may be applied
        ├── PermanentError   400, 403, 404: the same request will fail the same way
        └── QuotaError       507: the tenant's storage quota is full

Messages never contain secrets or tokens: they are built from status codes and the server's
error bodies only.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousWriteError",
    "ApiError",
    "AuthError",
    "ConfigError",
    "ImporterError",
    "PermanentError",
    "QuotaError",
    "RetryableError",
    "ThrottledError",
]


class ImporterError(Exception):
    """Base of every error the importer raises on purpose; ``str()`` is one clear sentence."""


class ConfigError(ImporterError):
    """Bad usage, a bad configuration file, or a feed that cannot be read."""


class AuthError(ImporterError):
    """Authentication failed: wrong or expired secret, unknown app or tenant, or a 401 that
    survives a refresh."""


class ApiError(ImporterError):
    """The target answered with an error status (``status`` 0 when no answer came)."""

    def __init__(
        self, message: str, *, status: int = 0, code: str | None = None, body: object = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        # The error answer's JSON, for a target whose API answers per item in a refusal too
        # (sentinel's 400 names each refused object); None when there was none.
        self.body = body


class RetryableError(ApiError):
    """A transient failure: the same request may succeed later."""


class ThrottledError(RetryableError):
    """HTTP 429: the server asks us to wait ``retry_after`` seconds (``None`` if it did not say)."""

    def __init__(
        self, message: str, *, retry_after: float | None, status: int = 429, code: str | None = None
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class AmbiguousWriteError(RetryableError):
    """A write was sent but its answer was lost (reset or timeout): it may have been applied."""


class PermanentError(ApiError):
    """HTTP 400/403/404: retrying the same request cannot help."""


class QuotaError(ApiError):
    """HTTP 507: the tenant's quota (definitions, IOCs, non-Equals IOCs) is exhausted."""
