"""Issued access tokens: opaque strings bound to a client's tenant, audience and expiry; and the
client assertions already used (their ``jti``), remembered until they expire."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from importer.emulator.replies import ApiError

__all__ = ["MDE", "SENTINEL", "TI", "Grant", "TokenStore", "audiences_for"]

TI = "ti"
MDE = "mde"
SENTINEL = "sentinel"  # the STIX upload API and its ARM read-back: Azure Resource Manager's audience

# The TI API's samples ask for graph.windows.net; its doc's token section also shows graph.microsoft.com.
_TI_RESOURCES = ("https://graph.windows.net", "https://graph.microsoft.com",
                 "https://ti.securitycenter.windows.com")
_MDE_RESOURCES = ("https://api.securitycenter.microsoft.com",
                  "https://securitycenter.onmicrosoft.com/windowsatpservice")
_SENTINEL_RESOURCES = ("https://management.azure.com", "https://management.core.windows.net")


def audiences_for(resource: str, own_urls: tuple[str, ...]) -> frozenset[str]:
    """Which APIs a resource URI grants: TI, MDE, Sentinel, all three (the emulator's own URL), or none.

    Trailing slashes do not matter: Azure AD takes ``https://management.azure.com/`` (v1) and the
    scope ``https://management.azure.com/.default`` (v2) for the same resource.
    """
    resource = resource.rstrip("/").lower()
    if resource in _TI_RESOURCES:
        return frozenset((TI,))
    if resource in _MDE_RESOURCES:
        return frozenset((MDE,))
    if resource in _SENTINEL_RESOURCES:
        return frozenset((SENTINEL,))
    if resource in own_urls:
        return frozenset((TI, MDE, SENTINEL))
    return frozenset()


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token allows: one tenant, some audiences, until ``expires_at`` (epoch seconds)."""

    tenant: str
    client_id: str
    audiences: frozenset[str]
    expires_at: float


class TokenStore:
    """Issues tokens and checks ``Authorization`` headers against them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._grants: dict[str, Grant] = {}
        self.issued = 0
        self._assertions: dict[str, float] = {}  # jti -> when its assertion expires
        self._prune_at = 64

    def first_use(self, jti: str, expires_at: float) -> bool:
        """Record a client assertion's ``jti``: False if one still valid was seen with it before."""
        now = self.clock()
        seen = self._assertions.get(jti)
        if seen is not None and seen > now:
            return False
        self._assertions[jti] = expires_at
        if len(self._assertions) >= self._prune_at:
            # An expired assertion is refused for its time anyway: forget it. Amortised: the table
            # is walked only when it has doubled since the last walk.
            self._assertions = {key: end for key, end in self._assertions.items() if end > now}
            self._prune_at = max(64, 2 * len(self._assertions))
        return True

    def issue(self, grant: Grant) -> str:
        token = secrets.token_urlsafe(32)
        self._grants[token] = grant
        self.issued += 1
        return token

    def authorize(self, request: web.BaseRequest, audience: str) -> Grant:
        """The grant behind the request's bearer token, or :class:`ApiError` 401 (never echoing it)."""
        header = request.headers.get("Authorization")
        if not header:
            raise _unauthorized("Authorization header is missing.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("Authorization header is not a bearer token.")
        grant = self._grants.get(token.strip())
        if grant is None:
            raise _unauthorized("The access token is invalid.")
        if self.clock() >= grant.expires_at:
            raise _unauthorized("The access token has expired.")
        if audience not in grant.audiences:
            raise _unauthorized("The access token was issued for another audience.")
        return grant


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "Unauthorized", message,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
