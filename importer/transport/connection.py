"""How to reach a target API: URLs, credentials, timeouts and retry bounds, as plain frozen values.

Only ``importer/settings/`` reads the environment or a config file; everything below it gets a
``ConnectionSettings``. The client secret travels wrapped in ``Secret`` so that no repr, log line
or exception can show it by accident; a certificate credential (``transport.assertion``), which
stands in for the secret, keeps its key to itself and shows only its file and thumbprint.
``NetworkSettings`` is what every request of a run shares, feed downloads included: the CA bundle
to trust besides the system's, whether plain http to another machine is allowed, and the proxy
variables the settings read from the environment. ``CredentialNames`` says which variables the
credentials were read from, for advice to name them (``check TI_CLIENT_SECRET``, or the variable
a ``[[destination]]`` table names instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from importer.errors import ConfigError
from importer.transport.urls import url_problem

__all__ = [
    "NO_SECRET",
    "CertificateCredential",
    "ConnectionSettings",
    "CredentialNames",
    "NetworkSettings",
    "Secret",
    "auth_version_of",
]


class Secret:
    """A client secret: ``repr``/``str`` hide it; ``reveal()`` is the one way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


NO_SECRET = Secret("")  # the secret of a connection that authenticates with a certificate


class CertificateCredential(Protocol):
    """What the token request needs of a certificate credential (``assertion.ClientCertificate``)."""

    @property
    def path(self) -> str: ...  # the PEM file, for messages

    @property
    def sha1_hex(self) -> str: ...  # its thumbprint as the app registration shows it, for messages

    def form(self, *, client_id: str, audience: str, now: float) -> dict[str, str]:
        """The token request's credential fields: a new signed assertion for ``audience``."""
        ...


@dataclass(frozen=True, slots=True)
class CredentialNames:
    """The environment variables a connection's credentials come from: what an error tells the user
    to check. A single-target run's are ``TI_CLIENT_*``; a ``[[destination]]``'s, those it names."""

    client_id: str = "TI_CLIENT_ID"
    client_secret: str = "TI_CLIENT_SECRET"  # noqa: S105 -- a variable's name, not a secret
    client_cert: str = "TI_CLIENT_CERT"


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """How any request of a run leaves this host: whom TLS trusts, and whether plain http may go out."""

    ca_bundle: str | None = None  # PEM file of roots trusted besides the system's (transport.tls)
    allow_http: bool = False  # plain http to hosts other than this machine (never needed for loopback)
    # HTTPS_PROXY, HTTP_PROXY, NO_PROXY as (scheme or "no", value) pairs (``transport.proxies``).
    proxies: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """One target's connection: where, who, and how patiently (timeouts and retry bounds)."""

    auth_url: str  # whole token URL, e.g. https://login.windows.net/<tenant>/oauth2/token
    api_url: str  # base, e.g. https://ti.securitycenter.windows.com/V1.0/
    client_id: str
    # Exactly one credential: a secret, or a certificate (then the secret is empty).
    client_secret: Secret = NO_SECRET
    client_cert: CertificateCredential | None = None
    audience: str | None = None  # resource (v1) / scope base (v2); None = the target's default
    auth_version: Literal["v1", "v2"] | None = None  # None: from the URL ("/v2.0/" -> v2)
    connect_timeout: float = 10.0
    total_timeout: float = 60.0
    max_attempts: int = 6
    max_retry_seconds: float = 300.0  # total time budget for one request's retries
    rate_per_minute: float | None = None  # shared limiter; None = unlimited
    # A test aid: the target's rate windows last this share of real time, to match an emulator
    # whose windows are scaled alike (mde: --mde-window-scale). 1.0 against a real API.
    window_scale: float = 1.0
    verify_tls: bool = True
    network: NetworkSettings = NetworkSettings()
    # The target's own run-level settings (``TargetPackage.options``: sentinel's workspace id...),
    # as (key, value) pairs in the table's order; ``option(key)`` reads one.
    target_options: tuple[tuple[str, str], ...] = ()
    # Other bases of the same API (sentinel's ARM read-back): the token goes to their origins too,
    # and to no other (``transport.auth``). A target's opener names them.
    extra_api_urls: tuple[str, ...] = ()

    # The values of those options that say where the indicators live (sentinel: the workspace and
    # the source system), in the table's order: with the API URL they make the tenant's key.
    tenant_scope: tuple[str, ...] = ()
    names: CredentialNames = CredentialNames()  # where the credentials were read from, for advice

    @property
    def tenant_url(self) -> str:
        """The API URL, narrowed by ``tenant_scope``: what the journal and the run lock key a tenant by."""
        if not self.tenant_scope:
            return self.api_url
        return self.api_url.rstrip("/") + "/" + "/".join(self.tenant_scope)

    def option(self, key: str) -> str | None:
        """The target-level setting ``key`` (None when not set and without a default)."""
        return next((value for name, value in self.target_options if name == key), None)

    def __post_init__(self) -> None:
        # Configuration mistakes surface here as one sentence, not later as a confusing failure.
        # (The settings check the URLs first, naming the variable or key they came from.)
        for name in ("auth_url", "api_url"):
            problem = url_problem(getattr(self, name), allow_http=self.network.allow_http)
            if problem is not None:
                raise ConfigError(f"{name} {problem}")
        for url in self.extra_api_urls:
            problem = url_problem(url, allow_http=self.network.allow_http)
            if problem is not None:
                raise ConfigError(f"the API URL {url} {problem}")
        if not self.client_id:
            raise ConfigError("the client id is empty")
        if self.client_cert is None and not self.client_secret:
            raise ConfigError("the client secret is empty")
        if self.client_cert is not None and self.client_secret:
            raise ConfigError("a client secret and a client certificate are both given: keep one")
        if self.connect_timeout <= 0 or self.total_timeout <= 0:
            raise ConfigError("timeouts must be positive numbers of seconds")
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        if self.max_retry_seconds < 0:
            raise ConfigError("max_retry_seconds must not be negative")
        if self.rate_per_minute is not None and self.rate_per_minute <= 0:
            raise ConfigError("the rate limit must be a positive number of requests per minute")
        if not 0 < self.window_scale <= 1:
            raise ConfigError("the window scale must be more than 0 and at most 1")


def auth_version_of(settings: ConnectionSettings) -> Literal["v1", "v2"]:
    """The token endpoint's protocol: as configured, else ``v2`` when the URL says ``/v2.0/``."""
    if settings.auth_version is not None:
        return settings.auth_version
    return "v2" if "/v2.0/" in settings.auth_url.lower() else "v1"
