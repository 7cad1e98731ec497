"""Client-credentials tokens for a target API, applied by an aiohttp client middleware.

The token is cached and refreshed shortly before it expires (``min(5 min, 10 % of its
lifetime)``, on an injectable monotonic clock), **single-flight**: a lock makes one refresh serve
every request waiting for it. Its lifetime is counted from the moment the token was *asked for*,
not from when the answer arrived: the server started the clock no earlier than that, so a slow
token call can never make us trust a token the server has already expired.

A request answered 401 is re-sent **once**, after a refresh that only happens if the token that
failed is still the current one (fifty 401s for one expired token make one token call). A 401 to
the re-sent request is an ``AuthError`` (a refused token stops the run after one refresh) - unless
our own clock says the token it carried had expired before the answer came: that 401 is an
expiry, not a refusal (the request aged in flight, e.g. waiting for a connection), so it is
handled like a first 401, at most ``_MAX_RESENDS`` times in all. The token request itself
bypasses the middleware. Token-endpoint
refusals become one ``AuthError`` sentence naming the AADSTS code and what to do; an endpoint
that cannot be reached becomes a ``ConfigError`` naming the URL. The secret and the tokens never
appear in logs, errors or reprs. With a certificate instead of a secret (``transport.assertion``),
each token request - every attempt, every refresh - carries a newly signed client assertion.

The token goes to the API's origins only (scheme, host and port of ``api_url``, and of the
``extra_api_urls`` its target names, e.g. sentinel's ARM read-back): the middleware adds it to no
request for another origin, whatever led there. The token request follows no
redirect: a 307/308 would re-post the form, secret included, to wherever it points, and a 302's
target could answer with a token of its choosing; any 3xx is a ``ConfigError`` naming the token
URL. A TLS failure (an untrusted certificate) is a ``ConfigError`` too: retrying cannot help.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from importer.errors import AuthError, ConfigError, RetryableError
from importer.transport.connection import ConnectionSettings, CredentialNames, auth_version_of
from importer.transport.proxies import Proxies
from importer.transport.retry import Retrier
from importer.transport.stats import TransportStats
from importer.transport.tls import tls_problem
from importer.transport.urls import origin_of, redirect_target, shown

__all__ = ["ClientCredentials", "token_error_message"]

_log = logging.getLogger(__name__)
_MAX_MARGIN = 300.0  # refresh at most five minutes early...
_MARGIN_SHARE = 0.1  # ...or a tenth of the lifetime, whichever is smaller
_DEFAULT_LIFETIME = 300.0  # a token answer without any expiry: assume short, refresh early
_MAX_RESENDS = 4  # re-sends of one request after 401s; only expiries in flight go beyond one
_AADSTS = re.compile(r"AADSTS(\d+)")

# What the user should do about the token endpoint's common refusals (codes from API.md §1);
# ``{secret}``, ``{cert}`` and ``{id}``: the variables the credentials came from (``CredentialNames``).
_ADVICE: dict[int, str] = {
    7000215: "the client secret is wrong (AADSTS7000215): check {secret}",
    7000222: "the client secret has expired (AADSTS7000222): create a new secret in the app registration",
    700016: "application {client_id} was not found in the tenant (AADSTS700016): check the client id "
    "and the tenant in the authorization URL",
    90002: "the tenant was not found (AADSTS90002): check the authorization URL",
    70011: "the requested scope was refused (AADSTS70011): check the audience for this target",
    901002: "the v2.0 token endpoint does not take a 'resource' (AADSTS901002): use a v1 authorization "
    "URL or the v2 protocol",
    500011: "the token endpoint does not know the requested resource (AADSTS500011): check the audience "
    "for this target",
    90055: "the token endpoint is throttling this app (AADSTS90055): try again later",
    # Certificate credentials (transport.assertion): the assertion the certificate signed was refused.
    700027: "the token endpoint refused the client certificate (AADSTS700027): upload the certificate "
    "{thumbprint} to the app registration of {client_id}, or check {cert}",
    700024: "the client assertion was outside its valid time range (AADSTS700024): check this machine's "
    "clock",
    700023: "the client assertion's audience was refused (AADSTS700023): check the authorization URL",
    700021: "the client assertion names another application (AADSTS700021): check the client id ({id})",
}


def token_error_message(
    status: int, body: str, *, client_id: str, thumbprint: str = "", names: CredentialNames | None = None
) -> str:
    """One sentence for a refusal from the token endpoint: the AADSTS code and what to do
    (``thumbprint``: the client certificate's, when one signed the request; ``names``: the
    variables its advice names)."""
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = None
    description = ""
    code: int | None = None
    if isinstance(parsed, dict):
        description = str(parsed.get("error_description") or parsed.get("error") or "")
        codes = parsed.get("error_codes")
        if isinstance(codes, list) and codes and str(codes[0]).isdigit():
            code = int(codes[0])
    if code is None and (match := _AADSTS.search(description)):
        code = int(match.group(1))
    if code in _ADVICE:
        names = names or CredentialNames()
        return _ADVICE[code].format(
            client_id=client_id, thumbprint=thumbprint or "(none given)", id=names.client_id,
            secret=names.client_secret, cert=names.client_cert,
        )  # fmt: skip
    if code is not None:
        # Azure appends trace and correlation ids on new lines: keep the first line only.
        first_line = description.strip().splitlines()[0] if description.strip() else "no description"
        return f"the token endpoint refused the request (AADSTS{code}): {first_line}"
    return f"the token endpoint answered HTTP {status} without an AADSTS code: check the authorization URL"


def _number(value: Any) -> float | None:
    """``expires_in``/``expires_on`` arrive as numbers (v2) or as strings of digits (v1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class _Token:
    header: str = field(repr=False)  # "Bearer <token>", built once
    refresh_at: float  # on the monotonic clock
    expires_at: float  # when the server stops accepting it, at the latest (monotonic clock)

    @property
    def value(self) -> str:
        return self.header[7:]


class ClientCredentials:
    """The token source of one session; ``middleware`` goes into ``ClientSession(middlewares=...)``."""

    def __init__(
        self,
        settings: ConnectionSettings,
        stats: TransportStats,
        *,
        default_audience: str,
        retrier: Retrier,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._retrier = retrier
        self._clock = clock
        self._wall_clock = wall_clock
        self._audience = settings.audience or default_audience
        self._version = auth_version_of(settings)
        # The API's origins: its base URL's, and those of the other bases the target named
        # (sentinel reads back through ARM with the same token). No other origin gets a token.
        self._api_origins = frozenset(origin_of(url) for url in (settings.api_url, *settings.extra_api_urls))
        self.proxies = Proxies(settings.network)  # the run's one table: HttpClient uses it too
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self._fatal: AuthError | ConfigError | None = None  # once refused, every waiter hears why

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self._settings.client_id!r}, version={self._version!r})"

    def fresh(self) -> bool:
        """Whether the cached token is good to use now (no refresh due): a check without awaiting."""
        current = self._token
        return current is not None and self._clock() < current.refresh_at

    async def token(self, session: aiohttp.ClientSession) -> str:
        """The current token, refreshed first if it is due (one refresh for all who wait)."""
        current = self._token
        if current is None or self._clock() >= current.refresh_at:
            current = await self._refresh(session, failed=None)
        return current.value

    async def middleware(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """Attach the bearer token; on 401, refresh (if still current) and re-send once (see the module)."""
        if origin_of(request.url) not in self._api_origins:
            # Not the API: whatever led here (a link, a caller's mistake), it gets no token.
            request.headers.popall("Authorization", None)
            return await handler(request)
        token = self._token
        if token is None or self._clock() >= token.refresh_at:
            token = await self._refresh(request.session, failed=None)
        request.headers["Authorization"] = token.header
        response = await handler(request)
        if response.status != 401:
            return response
        refreshed = False
        for _ in range(_MAX_RESENDS):
            # A 401 to a token that, by our clock, had expired before the answer came says nothing
            # about whether the API accepts our tokens; to a token still valid after a refresh, it does.
            if refreshed and self._clock() < token.expires_at:
                break
            response.release()
            self._stats.auth_retries += 1
            _log.debug("401 from %s %s: refresh and re-send", request.method, request.url.path)
            token = await self._refresh(request.session, failed=token)
            refreshed = True
            request.headers["Authorization"] = token.header
            response = await handler(request)
            if response.status != 401:
                return response
        return response  # still 401: the caller's AuthError

    async def _refresh(self, session: aiohttp.ClientSession, *, failed: _Token | None) -> _Token:
        async with self._lock:
            if self._fatal is not None:
                raise type(self._fatal)(str(self._fatal))
            current = self._token
            # Someone else refreshed while we waited for the lock: use theirs.
            if current is not None and current is not failed and self._clock() < current.refresh_at:
                return current
            try:
                self._token = await self._fetch(session)
            except (AuthError, ConfigError) as error:
                self._fatal = error
                raise
            return self._token

    async def _fetch(self, session: aiohttp.ClientSession) -> _Token:
        try:
            return await self._retrier.call(lambda: self._fetch_once(session))
        except RetryableError as error:
            if error.status == 0:
                raise ConfigError(
                    f"cannot reach the token endpoint {self._endpoint()} ({error}): check the authorization "
                    "URL and the network"
                ) from None
            raise AuthError(f"the token endpoint kept failing ({error}): try again later") from None

    def _endpoint(self) -> str:
        return shown(self._settings.auth_url)

    def _form(self) -> dict[str, str]:
        """The token request's form; with a certificate, a new signed assertion each time it is built
        (every attempt, every refresh): an assertion is never re-sent."""
        settings = self._settings
        form = {"grant_type": "client_credentials", "client_id": settings.client_id}
        if settings.client_cert is not None:
            form.update(
                settings.client_cert.form(
                    client_id=settings.client_id, audience=settings.auth_url, now=self._wall_clock()
                )
            )
        else:
            form["client_secret"] = settings.client_secret.reveal()
        if self._version == "v2":
            scope = self._audience
            form["scope"] = scope if scope.endswith("/.default") else scope.rstrip("/") + "/.default"
        else:
            form["resource"] = self._audience
        return form

    async def _fetch_once(self, session: aiohttp.ClientSession) -> _Token:
        asked = self._clock()  # the server's lifetime starts no earlier than this
        try:
            # middlewares=(): the token call must not go through the middleware that needs a token.
            proxy, proxy_headers = self.proxies.for_url(self._settings.auth_url)
            async with session.post(
                self._settings.auth_url,
                data=self._form(),
                middlewares=(),
                allow_redirects=False,
                proxy=proxy,
                proxy_headers=proxy_headers,
            ) as resp:
                status = resp.status
                location = resp.headers.get("Location", "")
                body = (await resp.read()).decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError) as error:
            self._stats.connection_errors += 1
            if (problem := tls_problem(error)) is not None:
                raise ConfigError(f"cannot reach the token endpoint {self._endpoint()}: {problem}") from None
            raise RetryableError(_connection_reason(error)) from None
        if 300 <= status < 400:
            target = redirect_target(self._settings.auth_url, location)
            where = "an unreadable location" if target is None else shown(target)
            raise ConfigError(
                f"the token endpoint {self._endpoint()} answered HTTP {status}, a redirect to {where}, and "
                "the token request follows no redirect (its credential goes to the configured URL "
                "only): set TI_AUTH_URL to the final token URL"
            )
        if status == 429 or status >= 500:
            raise RetryableError(f"HTTP {status}", status=status)
        if status != 200:
            cert = self._settings.client_cert
            raise AuthError(
                token_error_message(
                    status, body, client_id=self._settings.client_id,
                    thumbprint="" if cert is None else cert.sha1_hex, names=self._settings.names,
                )
            )  # fmt: skip
        return self._parse(body, asked)

    def _parse(self, body: str, asked: float) -> _Token:
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("access_token"), str):
            raise AuthError(
                "the token endpoint answered 200 without an access token: check the authorization URL"
            )
        lifetime = _number(parsed.get("expires_in"))
        if lifetime is None and (expires_on := _number(parsed.get("expires_on"))) is not None:
            # An absolute expiry: what is left of it now, whenever the server issued it.
            asked = self._clock()
            lifetime = expires_on - self._wall_clock()
        if lifetime is None:
            lifetime = _DEFAULT_LIFETIME
        lifetime = max(0.0, lifetime)
        margin = min(_MAX_MARGIN, _MARGIN_SHARE * lifetime)
        self._stats.token_refreshes += 1
        _log.debug("new access token for client %s, valid %.0f s", self._settings.client_id, lifetime)
        expires_at = asked + lifetime
        return _Token("Bearer " + parsed["access_token"], expires_at - margin, expires_at)


def _connection_reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no answer before the timeout"
    if isinstance(error, aiohttp.ClientProxyConnectionError):
        return f"cannot connect to the proxy: {error.os_error.strerror or type(error.os_error).__name__}"
    if isinstance(error, aiohttp.ClientHttpProxyError):
        return f"the proxy refused the connection (HTTP {error.status})"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect: {error.os_error.strerror or type(error.os_error).__name__}"
    return f"connection failed: {type(error).__name__}"
