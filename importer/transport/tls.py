"""Whom TLS trusts: one verifying ``ssl.SSLContext`` per CA bundle, and a failed handshake in one sentence.

The context trusts the system's roots plus, when given, a bundle's (``--ca-bundle``,
``ca_bundle``, ``SSL_CERT_FILE``): a corporate proxy that inspects TLS, or a private CA, signs
with a root the system does not know. Verification is never turned off here. Building a context
reads certificate files from disk, so each is built once per process (and first by the settings,
before any event loop runs, which also checks the bundle).
"""

from __future__ import annotations

import functools
import os
import ssl

import aiohttp

from importer.errors import ConfigError

__all__ = ["tls_context", "tls_problem"]

_HOSTNAME_MISMATCH = 62  # OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH


@functools.lru_cache(maxsize=8)
def tls_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the system's roots, plus ``ca_bundle``'s (a PEM file) if given.

    A bundle that is missing, unreadable or holds no certificate is a ``ConfigError``."""
    context = ssl.create_default_context()
    defaults = ssl.get_default_verify_paths()
    system = defaults.openssl_cafile
    # OpenSSL lets SSL_CERT_FILE *replace* the system's roots; a bundle here *adds* to them, so
    # the system file is loaded too when the environment pointed elsewhere (a root loaded twice
    # is ignored).
    if os.path.isfile(system) and os.path.realpath(system) != os.path.realpath(defaults.cafile or system):
        context.load_verify_locations(cafile=system)
    if ca_bundle is not None:
        try:
            context.load_verify_locations(cafile=ca_bundle)
        except FileNotFoundError:
            raise ConfigError(f"the CA bundle {ca_bundle} does not exist") from None
        except ssl.SSLError:  # before OSError, of which it is one
            raise ConfigError(f"the CA bundle {ca_bundle} holds no PEM certificate") from None
        except OSError as error:
            raise ConfigError(f"the CA bundle {ca_bundle} cannot be read: {error.strerror}") from None
    context.set_alpn_protocols(["http/1.1"])  # as aiohttp's own default context: it speaks HTTP/1.1
    return context


def tls_problem(error: BaseException) -> str | None:
    """One sentence for a TLS failure (an untrusted or misnamed certificate, a failed handshake),
    saying what to do; None for any other error. Not worth retrying: the next try fails alike."""
    if not isinstance(error, aiohttp.ClientSSLError):
        return None
    where = f"{error.host}:{error.port}"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        cert = error.certificate_error
        why = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or str(cert)
        if getattr(cert, "verify_code", None) == _HOSTNAME_MISMATCH:
            return f"the TLS certificate of {where} is for another host ({why}): check the URL's host name"
        return (
            f"the TLS certificate of {where} is not trusted ({why}): if a proxy or a private CA signs it, "
            "name that CA's certificate with --ca-bundle FILE (or SSL_CERT_FILE)"
        )
    reason = getattr(error.os_error, "reason", None) or type(error.os_error).__name__
    return f"the TLS handshake with {where} failed ({reason}): check that the URL's port speaks https"
