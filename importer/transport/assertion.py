"""The certificate credential: a PEM file's certificate and RSA key, and the client assertions it signs.

Instead of a client secret, the token request may carry a JWT signed by the app's certificate
(RFC 7523, API.md section 1): ``client_assertion_type`` = the jwt-bearer URN, ``client_assertion``
= an RS256 JWT whose header names the certificate by ``x5t`` (the base64url SHA-1 thumbprint of
its DER form) and whose claims are ``aud`` (the token URL), ``iss`` = ``sub`` (the client id), a
random ``jti``, ``nbf``/``iat`` (now) and ``exp`` (five minutes on; the service allows ten). Each
token request gets a fresh one, so a captured assertion is worth minutes, never a second token.

Signing and key handling are ``cryptography``'s and PyJWT's, not code of ours. Loading is strict,
and each refusal is one ``ConfigError`` sentence naming the file: unreadable, no certificate, no
key, an encrypted key without its password or with a wrong one, a key that is not RSA, no
certificate matching the key, a certificate expired or not yet valid. Neither the password nor
the key nor an assertion ever reaches a message, a repr or a log line.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from importer.errors import ConfigError
from importer.transport.connection import Secret

__all__ = ["ASSERTION_TYPE", "ClientCertificate", "load_certificate"]

_log = logging.getLogger(__name__)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_RENEW_WITHIN = timedelta(days=30)  # a nightly job warns this long before its certificate expires
_LIFETIME = 300  # seconds an assertion is good for: a few minutes (API.md: at most ten)
_MAX_FILE = 1 << 20  # a certificate, its chain and a key are a few kB: more is the wrong file
_KEY_MARK = b"PRIVATE KEY-----"  # PKCS#8, encrypted PKCS#8 and the traditional RSA/EC forms


class ClientCertificate:
    """A loaded certificate credential that signs client assertions; its repr shows file and thumbprint."""

    __slots__ = ("_key", "path", "sha1_hex", "x5t")

    def __init__(self, path: str, certificate: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
        der = certificate.public_bytes(serialization.Encoding.DER)
        digest = hashlib.sha1(der, usedforsecurity=False).digest()  # the x5t the service matches
        self.path = path
        self.x5t = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        self.sha1_hex = digest.hex().upper()  # as the app registration's portal page shows it
        self._key = key

    def __repr__(self) -> str:
        return f"ClientCertificate(path={self.path!r}, thumbprint={self.sha1_hex!r})"

    def form(self, *, client_id: str, audience: str, now: float) -> dict[str, str]:
        """The token request's credential fields: a new assertion for ``audience`` (the token URL)."""
        issued = int(now)
        claims = {
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": str(uuid.uuid4()),
            "nbf": issued,
            "iat": issued,
            "exp": issued + _LIFETIME,
        }
        signed = jwt.encode(claims, self._key, algorithm="RS256", headers={"x5t": self.x5t})
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}


def load_certificate(
    path: Path, password: Secret | None, *, named: str, password_from: str, now: datetime
) -> ClientCertificate:
    """The credential in the PEM file ``path`` (``named``: where its path was given; ``password_from``:
    the variable a password comes from), checked to be usable at ``now`` (an aware datetime)."""
    where = f"the client certificate file {path} ({named})"
    data = _read(path, where)
    if _KEY_MARK not in data:
        raise ConfigError(
            f"{where} holds no private key: it must hold the app's certificate and its private key in PEM"
        )
    key = _private_key(data, password, where, password_from)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise ConfigError(f"{where} holds no PEM certificate: it must hold the app's certificate and its key")
    # A file exported with its chain holds several: the app's is the one whose public key is the key's.
    own = key.public_key().public_numbers()
    mine = [c for c in certificates if _public_numbers(c) == own]
    if not mine:
        raise ConfigError(f"no certificate in {where} matches its private key")
    certificate = mine[0]
    if now >= certificate.not_valid_after_utc:
        raise ConfigError(
            f"the certificate in {where} expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: "
            "upload a new one to the app registration and point to it"
        )
    if now < certificate.not_valid_before_utc:
        raise ConfigError(
            f"the certificate in {where} is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: check this machine's clock"
        )
    left = certificate.not_valid_after_utc - now
    if left < _RENEW_WITHIN:
        _log.warning(
            "the certificate in %s expires on %s UTC, in %d days: upload a new one to the app registration",
            where, f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M}", left.days,
        )  # fmt: skip
    return ClientCertificate(str(path), certificate, key)


def _read(path: Path, where: str) -> bytes:
    if not path.is_file():
        problem = "does not exist" if not path.exists() else "is not a regular file"
        raise ConfigError(f"{where} {problem}")
    try:
        with path.open("rb") as stream:
            data = stream.read(_MAX_FILE + 1)
    except OSError as error:
        raise ConfigError(f"cannot read {where}: {error.strerror or type(error).__name__}") from None
    if len(data) > _MAX_FILE:
        raise ConfigError(f"{where} is larger than 1 MiB: not a certificate and key file")
    return data


def _private_key(data: bytes, password: Secret | None, where: str, password_from: str) -> rsa.RSAPrivateKey:
    """The file's private key, decrypted with ``password`` if it is encrypted (and ignored if not)."""
    given = password.reveal().encode() if password else None
    try:
        try:
            key = serialization.load_pem_private_key(data, given)
        except TypeError:
            # Either encrypted without a password, or a password for a key that needs none.
            if given is None:
                raise ConfigError(
                    f"the private key in {where} is encrypted and {password_from} is not set: put its "
                    "password in that environment variable"
                ) from None
            key = serialization.load_pem_private_key(data, None)
    except ValueError:
        if given is not None and b"ENCRYPTED" in data:
            raise ConfigError(
                f"cannot decrypt the private key in {where} with the password in {password_from}: "
                "check the password"
            ) from None
        raise ConfigError(f"the private key in {where} is not a readable PEM private key") from None
    except UnsupportedAlgorithm:
        raise ConfigError(f"the private key in {where} uses an unsupported algorithm or cipher") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(
            f"the private key in {where} is not an RSA key: the token endpoint takes RS256 assertions only"
        )
    return key


def _public_numbers(certificate: x509.Certificate) -> rsa.RSAPublicNumbers | None:
    public = certificate.public_key()
    return public.public_numbers() if isinstance(public, rsa.RSAPublicKey) else None
