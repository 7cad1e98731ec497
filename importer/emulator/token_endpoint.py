"""The Azure AD client-credentials token endpoint, v1 (``resource``) and v2 (``scope``).

A client authenticates with its secret (in the form or by HTTP Basic) or with a client assertion
its registered certificate signed (``emulator.assertions``); the app's credential decides which
one can succeed.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import unquote_plus

from aiohttp import web

from importer.emulator.assertions import ASSERTION_TYPE, check_assertion
from importer.emulator.config import ClientApp
from importer.emulator.replies import json_response
from importer.emulator.tokens import Grant, TokenStore, audiences_for

__all__ = ["aad_error", "issue_token", "token_fault_shape"]

_DEFAULT_SUFFIX = "/.default"
_ERROR_URI = "https://login.microsoftonline.com/error?code="  # where Azure AD explains each code
_MALFORMED = 9002313  # Azure AD's "Invalid request. Request is malformed or invalid."


def aad_error(status: int, error: str, code: int, description: str,
              headers: dict[str, str] | None = None) -> web.Response:
    """An error shaped like Azure AD's: ``error``, ``error_description`` with the AADSTS code, ids,
    ``error_uri``."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    return json_response({
        "error": error,
        "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace_id}\r\n"
                             f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{_ERROR_URI}{code}",
    }, status, headers=headers)


def token_fault_shape(status: int, code: str, message: str,
                      headers: dict[str, str] | None = None) -> web.Response:
    """An injected fault at the token endpoint, worded as Azure AD words throttling and outages."""
    del code
    if status == 429:
        return aad_error(429, "temporarily_unavailable", 90055,
                         f"The tenant is being throttled. {message}", headers)
    return aad_error(status, "temporarily_unavailable" if status == 503 else "server_error", 50000,
                     "There was an error issuing a token or an authorization code. " + message, headers)


def _missing(name: str) -> web.Response:
    return aad_error(400, "invalid_request", 900144,
                     f"The request body must contain the following parameter: '{name}'.")


def issue_token(form: Mapping[str, str], *, tenant: str, version: int, clients: tuple[ClientApp, ...],
                tokens: TokenStore, lifetime: int, own_urls: tuple[str, ...],
                authorization: str | None = None) -> web.Response:
    """Answer one token request: checks in the order Azure AD applies them, then a fresh token.

    ``authorization`` is the request's ``Authorization`` header: the client may authenticate with
    HTTP Basic (RFC 6749 section 2.3.1) instead of ``client_secret`` in the form.
    """
    refused = _check_grant(form, tenant, clients)
    if refused is not None:
        return refused
    credentials = _credentials(form, authorization)
    if isinstance(credentials, web.Response):
        return credentials
    client = _client(credentials.client_id, tenant, clients)
    if isinstance(client, web.Response):
        return client
    if credentials.assertion is not None:
        path = f"/{tenant}/oauth2/v2.0/token" if version == 2 else f"/{tenant}/oauth2/token"
        token_urls = tuple(base + path for base in own_urls)
        refused = _check_assertion(credentials.assertion, client, token_urls, tokens)
    else:
        refused = _check_secret(credentials, client)
    if refused is not None:
        return refused
    resource = _requested_resource(form, version)
    if isinstance(resource, web.Response):
        return resource
    audiences = audiences_for(resource, own_urls)
    if not audiences:
        return _unknown_resource(form, version, resource, tenant)
    return _issue(tokens, tenant, client, audiences, version=version, lifetime=lifetime, resource=resource)


def _check_grant(form: Mapping[str, str], tenant: str, clients: tuple[ClientApp, ...]) -> web.Response | None:
    """The refusal of a request that is not a client-credentials grant, or names no known tenant."""
    grant_type = form.get("grant_type")
    if not grant_type:
        return _missing("grant_type")
    if grant_type != "client_credentials":
        return aad_error(400, "unsupported_grant_type", 70003,
                         "The app requested an unsupported grant type.")
    if not any(client.tenant == tenant for client in clients):
        return aad_error(400, "invalid_request", 90002,
                         f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.")
    return None


class _Credentials(NamedTuple):
    """Who the request says it is, and whether it said so with HTTP Basic (else in the form), with a
    secret or with a signed client assertion."""

    client_id: str | None
    secret: str | None
    basic: bool
    assertion: str | None = None


def _credentials(form: Mapping[str, str], authorization: str | None) -> _Credentials | web.Response:
    """The client's id and secret from HTTP Basic if the request uses it, else from the form."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        if "client_assertion" in form or "client_assertion_type" in form:
            return _assertion_credentials(form)
        return _Credentials(form.get("client_id"), form.get("client_secret"), False)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    raw_id, colon, raw_secret = decoded.partition(":")
    if not colon or not raw_id:
        return aad_error(400, "invalid_request", _MALFORMED,
                         "Invalid request. The Authorization header must be 'Basic ' and the base64 of "
                         "'client_id:client_secret'.")
    # RFC 6749 section 2.3.1: each part is form-urlencoded before the pair is base64-encoded.
    client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    if "client_secret" in form or "client_assertion" in form:
        return aad_error(400, "invalid_request", _MALFORMED,
                         "Invalid request. The client authenticated in the Authorization header and in "
                         "the body: use one method only.")
    if form.get("client_id", client_id) != client_id:
        return aad_error(400, "invalid_request", _MALFORMED,
                         "Invalid request. The client_id in the body is not the one in the Authorization "
                         "header.")
    return _Credentials(client_id, secret, True)


def _assertion_credentials(form: Mapping[str, str]) -> _Credentials | web.Response:
    """The client's id and its signed assertion (checked later, once the app is known)."""
    if "client_secret" in form:
        return aad_error(400, "invalid_request", _MALFORMED,
                         "Invalid request. The client sent a client_secret and a client_assertion: use "
                         "one method only.")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        return aad_error(400, "invalid_request", _MALFORMED,
                         f"Invalid request. The client_assertion_type must be '{ASSERTION_TYPE}'.")
    assertion = form.get("client_assertion")
    if not assertion:
        return _missing("client_assertion")
    return _Credentials(form.get("client_id"), None, False, assertion)


def _client(client_id: str | None, tenant: str, clients: tuple[ClientApp, ...]) -> ClientApp | web.Response:
    """The tenant's app the request names, or the refusal."""
    if not client_id:
        return _missing("client_id")
    client = next((c for c in clients if c.client_id == client_id and c.tenant == tenant), None)
    if client is None:
        return aad_error(400, "unauthorized_client", 700016,
                         f"Application with identifier '{client_id}' was not found in the directory "
                         f"'{tenant}'.")
    return client


def _check_assertion(assertion: str, client: ClientApp, token_urls: tuple[str, ...],
                     tokens: TokenStore) -> web.Response | None:
    """None if the app's certificate signed ``assertion`` for one of ``token_urls``, now; else the
    refusal (401 ``invalid_client``: a failed client authentication)."""
    refused = check_assertion(assertion, client_id=client.client_id, certificate=client.certificate,
                              token_urls=token_urls, now=tokens.clock(), first_use=tokens.first_use)
    if refused is None:
        return None
    return aad_error(401, "invalid_client", refused.code, refused.description)


def _check_secret(credentials: _Credentials, client: ClientApp) -> web.Response | None:
    """None if the secret is the app's and current; else the refusal. An app without a secret (one
    that authenticates with a certificate only) takes none.

    A failed client authentication is 401 ``invalid_client`` (RFC 6749 section 5.2), with the
    ``WWW-Authenticate`` challenge the RFC asks for when the client used the Authorization header.
    """
    challenge = {"WWW-Authenticate": 'Basic realm="token"'} if credentials.basic else None
    if credentials.secret is None:
        return aad_error(401, "invalid_client", 7000218,
                         "The request body must contain the following parameter: 'client_assertion' "
                         "or 'client_secret'.")
    if not client.client_secret or credentials.secret != client.client_secret:
        return aad_error(401, "invalid_client", 7000215,
                         "Invalid client secret provided. Ensure the secret being sent in the request is "
                         "the client secret value, not the client secret ID.", challenge)
    if client.secret_expired:
        return aad_error(401, "invalid_client", 7000222,
                         f"The provided client secret keys for app '{client.client_id}' are expired.",
                         challenge)
    return None


def _requested_resource(form: Mapping[str, str], version: int) -> str | web.Response:
    """The resource asked for: v2 names it by a ``scope`` ending in ``/.default``, v1 by ``resource``."""
    if version != 2:
        resource = form.get("resource", "")
        return resource if resource else _missing("resource")
    if "resource" in form:
        return aad_error(400, "invalid_request", 901002,
                         "The 'resource' request parameter is not supported.")
    scope = form.get("scope")
    if not scope:
        return _missing("scope")
    if " " in scope.strip() or not scope.endswith(_DEFAULT_SUFFIX):
        return aad_error(400, "invalid_scope", 1002012,
                         f"The provided value for scope {scope} is not valid. Client credential flows "
                         "must have a scope value with /.default suffixed to the resource identifier "
                         "(application ID URI).")
    return scope[: -len(_DEFAULT_SUFFIX)]


def _unknown_resource(form: Mapping[str, str], version: int, resource: str, tenant: str) -> web.Response:
    """The refusal of a resource (v2: a scope) that is none of the APIs the emulator serves."""
    if version == 2:
        return aad_error(400, "invalid_scope", 70011,
                         f"The provided value for the input parameter 'scope' is not valid. The scope "
                         f"{form.get('scope')} is not valid.")
    return aad_error(400, "invalid_resource", 500011,
                     f"The resource principal named {resource} was not found in the tenant named "
                     f"{tenant}.")


def _issue(tokens: TokenStore, tenant: str, client: ClientApp, audiences: frozenset[str], *,
           version: int, lifetime: int, resource: str) -> web.Response:
    """A fresh token for the app; v1 writes numbers as strings and adds ``expires_on`` and ``resource``."""
    now = tokens.clock()
    token = tokens.issue(Grant(tenant, client.client_id, audiences, now + lifetime))
    if version == 2:
        return json_response({"token_type": "Bearer", "expires_in": lifetime,
                              "ext_expires_in": lifetime, "access_token": token})
    return json_response({
        "token_type": "Bearer",
        "expires_in": str(lifetime),
        "ext_expires_in": str(lifetime),
        "expires_on": str(int(now + lifetime)),
        "not_before": str(int(now)),
        "resource": resource,
        "access_token": token,
    })
