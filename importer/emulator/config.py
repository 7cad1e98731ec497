"""The emulator's configuration: client apps, fault settings and limits, as frozen value objects."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "DEMO_CERT_CLIENT_ID",
    "DEMO_CLIENT",
    "DEMO_WORKSPACE",
    "ClientApp",
    "EmulatorConfig",
    "Faults",
    "SentinelWorkspace",
]


@dataclass(frozen=True)
class ClientApp:
    """One registered application: client-credentials grant, bound to one tenant.

    It authenticates with its secret or, when one is registered, with client assertions signed by
    its certificate (``certificate``: the DER bytes). An empty secret is no secret: such an app
    (a certificate-only one) is never let in by a secret.
    """

    client_id: str
    client_secret: str = field(repr=False)
    tenant: str
    secret_expired: bool = False  # the token endpoint answers AADSTS7000222
    certificate: bytes | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # the secret never reaches a log or a test failure
        return f"ClientApp(client_id={self.client_id!r}, tenant={self.tenant!r})"


DEMO_CLIENT = ClientApp("ti-importer-demo", "demo-secret-not-for-production", "contoso-demo")
# The demo app that authenticates with a certificate: generated when ``ti-import emulator`` starts
# (``emulator.cert``), so it exists only in a running emulator, never in a default configuration.
DEMO_CERT_CLIENT_ID = "ti-importer-demo-cert"


@dataclass(frozen=True)
class SentinelWorkspace:
    """One Log Analytics workspace with Microsoft Sentinel: its upload id, its ARM coordinates, its tenant."""

    workspace_id: str  # the GUID the STIX upload API names it by
    subscription_id: str  # ARM: /subscriptions/{sub}/resourceGroups/{rg}/.../workspaces/{name}
    resource_group: str
    name: str
    tenant: str


# Fixed values: the importer's tests and docs name this workspace, so they never change.
DEMO_WORKSPACE = SentinelWorkspace(
    workspace_id="7d3c9a52-4b1e-4f0a-9c62-5e8b1d2a4f10",
    subscription_id="0b9d4c1e-2f3a-4e5b-8c6d-7e8f9a0b1c2d",
    resource_group="ti-demo-rg",
    name="ti-demo-workspace",
    tenant="contoso-demo",
)


@dataclass(frozen=True)
class Faults:
    """Injected faults; rates are probabilities 0..1 drawn from a RNG seeded with ``seed``."""

    latency_ms: float = 0.0  # each answer leaves this long after its request arrived
    jitter_ms: float = 0.0
    error_rate: float = 0.0  # answer 500 or 503, nothing applied
    throttle_per_minute: int | None = None  # more than N in a sliding minute -> 429 + Retry-After
    reset_rate: float = 0.0  # drop the connection BEFORE applying the request
    lost_after_write_rate: float = 0.0  # apply the write, THEN drop the connection unanswered
    token_lifetime: int | None = None  # override of issued tokens' lifetime (token faults only)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("error_rate", "reset_rate", "lost_after_write_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency and jitter must not be negative")
        if self.throttle_per_minute is not None and self.throttle_per_minute < 1:
            raise ValueError("throttle_per_minute must be at least 1")
        if self.token_lifetime is not None and self.token_lifetime < 1:
            raise ValueError("token_lifetime must be at least 1 second")


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator needs: clients, token lifetime, paging, quotas, limits, faults, clock."""

    clients: tuple[ClientApp, ...] = (DEMO_CLIENT,)
    token_lifetime: int = 3600
    page_size: int = 1000  # TI: server-driven paging, @odata.nextLink beyond this
    max_alert_definitions: int | None = None  # TI quotas -> 507
    max_iocs: int | None = None
    max_non_equals_iocs: int | None = None
    mde_import_per_minute: int = 30  # MDE documented limits -> 429 TooManyRequests + Retry-After
    mde_batch_delete_per_hour: int = 1500  # BatchDelete's own hourly window, on top of the minute's
    mde_calls_per_minute: int = 100
    mde_calls_per_hour: int = 1500
    mde_tenant_cap: int = 15000
    mde_window_scale: float = 1.0  # 0.01 -> a "minute" lasts 0.6 s
    sentinel_workspaces: tuple[SentinelWorkspace, ...] = (DEMO_WORKSPACE,)
    sentinel_uploads_per_minute: int = 100  # per client app -> 429 "Try again in <n> seconds."
    sentinel_window_scale: float = 1.0  # as mde_window_scale, for the Sentinel upload window
    api_faults: Faults = Faults()
    token_faults: Faults = Faults()
    clock: Callable[[], float] = time.time  # injectable: token expiry, rate windows

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1")
        if self.token_lifetime < 1:
            raise ValueError("token_lifetime must be at least 1 second")
        if self.mde_window_scale <= 0:
            raise ValueError("mde_window_scale must be positive")
        if self.sentinel_window_scale <= 0:
            raise ValueError("sentinel_window_scale must be positive")
        ids = [w.workspace_id.lower() for w in self.sentinel_workspaces]
        if len(set(ids)) != len(ids):
            raise ValueError("sentinel workspace ids must be unique")
        for name in ("mde_import_per_minute", "mde_batch_delete_per_hour", "mde_calls_per_minute",
                     "mde_calls_per_hour", "mde_tenant_cap", "sentinel_uploads_per_minute"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not self.clients:
            raise ValueError("at least one client app is needed")
