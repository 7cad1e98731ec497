"""Self-signed certificates for the emulator's certificate-authenticated demo app, made at start.

``ti-import emulator`` registers a second demo app (``DEMO_CERT_CLIENT_ID``) whose credential is a
self-signed RSA certificate generated when it starts: the certificate and its unencrypted key are
written, as one PEM file readable by its owner only, to a temporary file whose path the banner
prints, and the file is removed when the emulator stops. Nothing is kept between runs, nothing
expires in a repository. Tests make their own certificates with ``self_signed``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from importer.emulator.config import DEMO_CERT_CLIENT_ID, ClientApp

__all__ = ["SelfSigned", "demo_certificate_file", "self_signed"]

_KEY_SIZE = 2048  # the smallest RSA key Azure AD takes for a certificate credential


@dataclass(frozen=True)
class SelfSigned:
    """A generated certificate: its DER bytes (what an app registers), and PEM of it and of its key."""

    der: bytes
    certificate_pem: bytes
    key: rsa.RSAPrivateKey = field(repr=False)

    def pem(self, password: bytes | None = None) -> bytes:
        """Certificate and private key in one PEM file, the key encrypted with ``password`` if given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.NoEncryption()
            if password is None
            else serialization.BestAvailableEncryption(password)
        )
        key = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        return self.certificate_pem + key


def self_signed(
    common_name: str, *, not_before: datetime | None = None, days: float = 90.0
) -> SelfSigned:
    """A new RSA key and a certificate for it, signed by itself, valid ``days`` from ``not_before``
    (default: an hour ago, so a clock a little behind still finds it valid)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    start = not_before or datetime.now(UTC) - timedelta(hours=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return SelfSigned(
        certificate.public_bytes(serialization.Encoding.DER),
        certificate.public_bytes(serialization.Encoding.PEM),
        key,
    )


@contextmanager
def demo_certificate_file(tenant: str) -> Iterator[tuple[ClientApp, Path]]:
    """The certificate demo app of ``tenant`` and the PEM file of its credential, removed on exit."""
    generated = self_signed(DEMO_CERT_CLIENT_ID)
    handle, name = tempfile.mkstemp(prefix="ti-importer-demo-cert-", suffix=".pem")  # mode 0600
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(generated.pem())
        yield ClientApp(DEMO_CERT_CLIENT_ID, "", tenant, certificate=generated.der), path
    finally:
        path.unlink(missing_ok=True)
