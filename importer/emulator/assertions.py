"""Client assertions checked as Azure AD checks them: the JWT a certificate signs instead of a secret.

A request may authenticate with ``client_assertion_type`` = the jwt-bearer URN and
``client_assertion`` = a JWT (RFC 7523, API.md section 1). The checks, in order, each refusal with
the code the real service gives for it:

- a JWT at all: three base64url parts, JSON header and claims -> AADSTS50027 (malformed);
- signed with the app's registered certificate: a certificate registered, ``alg`` RS256, the header's
  ``x5t`` its SHA-1 thumbprint, and an RS256 signature its public key verifies -> AADSTS700027;
- ``iss`` and ``sub`` both the client id -> AADSTS700021;
- ``aud`` the token URL the request was posted to -> AADSTS700023;
- ``exp`` not passed, ``nbf`` not in the future, and ``exp`` at most ten minutes away -> AADSTS700024;
- a ``jti``, never seen before while its assertion is valid -> AADSTS50027 (the emulator's choice:
  the service documents no code of its own for a replayed assertion).

There is no leeway for clock skew: the importer and the emulator share a clock, and an assertion
that only a lenient server would take is a bug to see here, not in production. The signature is
checked with ``cryptography`` directly, not with the JWT library the importer signs with, so a
mistake there cannot hide behind the same mistake here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["ASSERTION_TYPE", "MAX_LIFETIME", "Refusal", "check_assertion"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_LIFETIME = 600  # seconds: an assertion's exp at most ten minutes ahead (API.md section 1)
_MALFORMED_JWT = 50027
_INVALID_SIGNATURE = 700027
_WRONG_APP = 700021
_WRONG_AUDIENCE = 700023
_OUT_OF_TIME = 700024
_DOCS = ("Review the documentation at "
         "https://learn.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials.")


class Refusal(NamedTuple):
    """Why an assertion was refused: the AADSTS code and its description."""

    code: int
    description: str


def check_assertion(
    token: str,
    *,
    client_id: str,
    certificate: bytes | None,
    token_urls: tuple[str, ...],
    now: float,
    first_use: Callable[[str, float], bool],
) -> Refusal | None:
    """None if ``token`` authenticates ``client_id`` (whose registered certificate is the DER
    ``certificate``) at one of ``token_urls``; else the refusal. ``first_use(jti, exp)`` records a
    ``jti`` and says whether it was new."""
    parts = _parts(token)
    if parts is None:
        return Refusal(_MALFORMED_JWT, "JWT token is invalid or malformed.")
    header, claims, signed, signature = parts
    refused = _check_signature(header, signed, signature, certificate)
    if refused is not None:
        return refused
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        return Refusal(_WRONG_APP, "Client assertion application identifier doesn't match 'client_id' "
                                   f"parameter. {_DOCS}")
    audience = claims.get("aud")
    if not isinstance(audience, str) or _url_key(audience) not in {_url_key(url) for url in token_urls}:
        return Refusal(_WRONG_AUDIENCE, "Client assertion audience claim does not match Realm issuer. "
                                        + _DOCS)
    refused = _check_times(claims, now)
    if refused is not None:
        return refused
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        return Refusal(_MALFORMED_JWT, "JWT token is invalid or malformed: the 'jti' claim is missing.")
    if not first_use(jti, float(claims["exp"])):
        return Refusal(_MALFORMED_JWT, "JWT token is invalid or malformed: the client assertion was already "
                                       "used (its 'jti' was seen before).")
    return None


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes] | None:
    """Header, claims, the signed bytes and the signature of a compact JWS; None if it is not one."""
    pieces = token.split(".")
    if len(pieces) != 3:
        return None
    try:
        header = json.loads(_unbase64(pieces[0]))
        claims = json.loads(_unbase64(pieces[1]))
        signature = _unbase64(pieces[2])
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims, f"{pieces[0]}.{pieces[1]}".encode("ascii"), signature


def _unbase64(text: str) -> bytes:
    if not text.isascii() or "=" in text:  # base64url without padding, as JWS writes it
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_signature(header: dict[str, Any], signed: bytes, signature: bytes,
                     certificate: bytes | None) -> Refusal | None:
    """AADSTS700027 unless the registered certificate signed this, RS256, and the header names it."""
    if certificate is None:
        return Refusal(_INVALID_SIGNATURE, "The certificate with identifier used to sign the client "
                                           "assertion is not registered on application. [Reason - The "
                                           "application has no certificate registered.]")
    if header.get("alg") != "RS256":
        return Refusal(_INVALID_SIGNATURE, f"Client assertion contains an invalid signature. [Reason - "
                                           f"The algorithm {str(header.get('alg'))[:20]!r} is not RS256.]")
    thumbprint = hashlib.sha1(certificate, usedforsecurity=False).digest()
    x5t = base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode("ascii")
    if header.get("x5t") != x5t:
        return Refusal(_INVALID_SIGNATURE, "The certificate with identifier used to sign the client "
                                           "assertion is not registered on application. [Reason - The key "
                                           "was not found.]")
    public = x509.load_der_x509_certificate(certificate).public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        return Refusal(_INVALID_SIGNATURE, "Client assertion contains an invalid signature.")
    try:
        public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return Refusal(_INVALID_SIGNATURE, "Client assertion contains an invalid signature. [Reason - The "
                                           "signature does not verify with the registered certificate.]")
    return None


def _check_times(claims: dict[str, Any], now: float) -> Refusal | None:
    """AADSTS700024 unless ``exp`` is ahead (by at most ten minutes) and ``nbf``, if given, is not."""
    if not _is_number(claims.get("exp")) or not _is_number(claims.get("nbf", now)):
        return Refusal(_MALFORMED_JWT, "JWT token is invalid or malformed: 'exp' and 'nbf' must be numbers.")
    expires, not_before = float(claims["exp"]), float(claims.get("nbf", now))
    if now >= expires:
        return Refusal(_OUT_OF_TIME, "Client assertion is not within its valid time range. [Reason - The "
                                     "assertion has expired.]")
    if not_before > now:
        return Refusal(_OUT_OF_TIME, "Client assertion is not within its valid time range. [Reason - The "
                                     "assertion is not valid yet (nbf is in the future).]")
    if expires > now + MAX_LIFETIME:
        return Refusal(_OUT_OF_TIME, "Client assertion is not within its valid time range. [Reason - The "
                                     f"assertion expires more than {MAX_LIFETIME // 60} minutes from now.]")
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _url_key(url: str) -> str:
    """A token URL compared as Azure AD compares the audience: without case or a trailing slash."""
    return url.strip().rstrip("/").lower()
