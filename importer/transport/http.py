"""The HTTP layer every target shares: one session, its timeouts and limits, and errors by type.

``open_http`` builds, for one run, one ``aiohttp.ClientSession`` (TLS verified against the
system's roots and the CA bundle, proxies of ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, a total
and a connect timeout on every call, connection pool sized for the worker count, the auth
middleware) with one shared rate limiter and one retrier. ``HttpClient.request`` sends one request
and turns its outcome into JSON or a typed error, here and only here:

    401 (after the middleware's one refresh)  AuthError
    429                                       ThrottledError (Retry-After) + a pause for all senders
    408, 5xx                                  RetryableError
    400, 403, 404, other 4xx                  PermanentError
    507                                       QuotaError
    no answer to a write (reset, timeout)     AmbiguousWriteError: it may have been applied
    no connection at all, or no answer to a read   RetryableError
    3xx (API calls follow no redirect)        ConfigError naming where it pointed
    an untrusted certificate, a TLS failure   ConfigError saying what to do

It knows no target's URLs or JSON: ``ti_client`` (and the MDE client) build those.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from importer.errors import (
    AmbiguousWriteError,
    AuthError,
    ConfigError,
    PermanentError,
    QuotaError,
    RetryableError,
    ThrottledError,
)
from importer.model import InFlight
from importer.transport.auth import ClientCredentials
from importer.transport.connection import ConnectionSettings
from importer.transport.ratelimit import RateLimiter
from importer.transport.retry import Retrier, RetryPolicy, Sleep
from importer.transport.stats import TransportStats
from importer.transport.tls import tls_context, tls_problem
from importer.transport.urls import redirect_target, shown

__all__ = ["HttpClient", "client_timeout", "describe_connection_error", "open_http", "parse_retry_after"]

_log = logging.getLogger(__name__)
_ERROR_BODY_LIMIT = 4096  # enough for any OData error; a proxy's HTML page is cut short


def client_timeout(settings: ConnectionSettings) -> aiohttp.ClientTimeout:
    """The timeouts applied to every call (connect, and the whole request including its body)."""
    return aiohttp.ClientTimeout(total=settings.total_timeout, sock_connect=settings.connect_timeout)


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` in seconds from now: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def describe_connection_error(error: BaseException) -> str:
    """A short reason for a failure without an HTTP answer (never a secret: no headers, no bodies)."""
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return "connection timed out"
    if isinstance(error, TimeoutError):
        return "no answer before the timeout"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(error, aiohttp.ClientProxyConnectionError):
        return f"cannot connect to the proxy ({error.os_error.strerror or error.os_error})"
    if isinstance(error, aiohttp.ClientHttpProxyError):
        return f"the proxy refused the connection (HTTP {error.status})"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect ({error.os_error.strerror or error.os_error})"
    return f"connection failed ({type(error).__name__})"


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    code: str | None
    message: str
    body: Any = None  # the parsed JSON body, if it was JSON


def _server_message(status: int, reason: str | None, body: str) -> _Answer:
    """The server's own words from an error body (OData ``{"error": {"code", "message"}}``)."""
    code: str | None = None
    message = ""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            raw_code, raw_message = error.get("code"), error.get("message")
            code = raw_code if isinstance(raw_code, str) else None
            message = raw_message if isinstance(raw_message, str) else ""
        elif isinstance(parsed.get("message"), str):
            message = parsed["message"]
    if not message:
        message = reason or "no explanation given"
    return _Answer(status, code, " ".join(message.split()), parsed)


def _error_for(answer: _Answer, retry_after: float | None, what: str) -> Exception:
    status, code = answer.status, answer.code
    label = f"HTTP {status}" + (f" {code}" if code else "")
    text = f"{label}: {answer.message}"
    if status == 401:
        return AuthError(
            f"the API refused a fresh access token for {what} ({text}); check the app's API permissions "
            "and the audience"
        )
    if status == 429:
        return ThrottledError(f"throttled on {what} ({text})", retry_after=retry_after, code=code)
    if status == 507:
        return QuotaError(f"the tenant's quota is full ({text})", status=status, code=code)
    if status == 408 or status >= 500:
        return RetryableError(f"{what} failed ({text})", status=status, code=code)
    return PermanentError(text, status=status, code=code, body=answer.body)


class HttpClient:
    """Sends one request at a time through the shared session, limiter and stats; returns JSON."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        auth: ClientCredentials,
        limiter: RateLimiter,
        retrier: Retrier,
        stats: TransportStats,
    ) -> None:
        self.session = session
        self.auth = auth
        self.limiter = limiter
        self.retrier = retrier
        self.stats = stats
        self.proxies = auth.proxies  # one table per run, whichever HttpClient (an MDE lane) asks

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        what: str | None = None,
    ) -> Any:
        """One attempt: the parsed JSON answer (None for an empty one), or a typed error."""
        what = what or f"{method} {url}"
        write = method.upper() not in ("GET", "HEAD")
        # Pacing and token refresh happen before the request's own timeout starts to run.
        await self.limiter.acquire()
        if not self.auth.fresh():
            await self.auth.token(self.session)
        self.stats.requests += 1
        proxy, proxy_headers = self.proxies.for_url(url)
        try:
            async with self.session.request(
                method,
                url,
                json=json_body,
                params=params,
                allow_redirects=False,
                proxy=proxy,
                proxy_headers=proxy_headers,
            ) as resp:
                if 300 <= resp.status < 400:
                    raise _redirected(what, url, resp.status, resp.headers.get("Location"))
                if 200 <= resp.status < 300:
                    if resp.status == 204:
                        return None
                    body = await resp.read()
                    return json.loads(body) if body.strip() else None
                text = (await resp.content.read(_ERROR_BODY_LIMIT)).decode("utf-8", "replace")
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                answer = _server_message(resp.status, resp.reason, text)
        except aiohttp.ClientSSLError as error:
            self.stats.connection_errors += 1
            raise ConfigError(f"{what} failed: {tls_problem(error)}") from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            # Never connected: nothing was sent, so even a write is safe to repeat as is.
            self.stats.connection_errors += 1
            raise RetryableError(f"{what} failed: {describe_connection_error(error)}") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as error:
            self.stats.connection_errors += 1
            reason = describe_connection_error(error)
            if write:
                raise AmbiguousWriteError(f"{what}: {reason}; it may have been applied") from None
            raise RetryableError(f"{what} failed: {reason}") from None
        except ValueError:
            raise RetryableError(f"{what}: the answer was not valid JSON") from None
        if answer.status == 429:
            self.stats.throttled += 1
            if retry_after is not None:
                self.limiter.pause(retry_after)
        elif answer.status >= 500:
            self.stats.server_errors += 1
        _log.debug("%s answered HTTP %d", what, answer.status)
        raise _error_for(answer, retry_after, what)


def _redirected(what: str, url: str, status: int, location: str | None) -> ConfigError:
    # Following it would send the request (a write's body, and to the same origin the token) where
    # the API did not say it lives: the API URL is what is wrong, or someone is leading us away.
    target = redirect_target(url, location)
    where = "an unreadable location" if target is None else shown(target)
    return ConfigError(
        f"{what}: the API answered HTTP {status}, a redirect to {where}, and API calls follow no "
        "redirect (the token goes to the API's own origin only): check TI_API_URL"
    )


@asynccontextmanager
async def open_http(
    settings: ConnectionSettings,
    stats: TransportStats,
    *,
    default_audience: str,
    in_flight: InFlight | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> AsyncIterator[HttpClient]:
    """The run's one session (auth middleware, timeouts, TLS verification) with limiter and retrier."""
    retrier = Retrier(RetryPolicy.from_settings(settings), stats, sleep=sleep, clock=clock)
    limiter = RateLimiter(settings.rate_per_minute, clock=clock, sleep=sleep)
    auth = ClientCredentials(
        settings,
        stats,
        default_audience=default_audience,
        retrier=retrier,
        clock=clock,
        wall_clock=wall_clock,
    )
    pool = (in_flight or InFlight()).connections
    trust = tls_context(settings.network.ca_bundle) if settings.verify_tls else False
    connector = aiohttp.TCPConnector(limit=pool, limit_per_host=pool, ssl=trust)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=client_timeout(settings),
        headers={"Accept": "application/json"},
        middlewares=(auth.middleware,),
        raise_for_status=False,
    ) as session:
        yield HttpClient(session, auth, limiter, retrier, stats)
