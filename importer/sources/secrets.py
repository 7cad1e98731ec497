"""A feed's credentials, read from the environment variables its config names, kept as ``Secret``s.

A feed may need a header (abuse.ch's ``Auth-Key``, a TAXII server's bearer token) or HTTP Basic
credentials. The config names where each secret lives — ``headers = { "Auth-Key" =
"env:ABUSECH_AUTH_KEY" }``, ``password_env = "TAXII_PASSWORD"`` — never the secret itself, so a
config file can be shared and committed. ``resolve_secrets`` (called by the settings, the one
reader of the environment) reads them once; a variable that is not set is one ``ConfigError``
sentence naming it (exit 2). The values travel as ``transport.connection.Secret``: no repr, log
line, report or journal row shows them, and they go only to the feed's own origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from importer.errors import ConfigError
from importer.fields import FORMAT, HEADERS, PASSWORD_ENV, TAXII, USERNAME
from importer.model import Field, Options
from importer.transport.connection import Secret

__all__ = ["CREDENTIALS", "FeedCredentials", "resolve_secrets"]


@dataclass(frozen=True, slots=True)
class FeedCredentials:
    """What a feed's requests carry: headers and HTTP Basic credentials, secrets wrapped."""

    headers: tuple[tuple[str, Secret], ...] = ()
    username: str | None = None
    password: Secret | None = None

    def request_headers(self) -> dict[str, str]:
        """The headers to send (HTTP Basic as its ``Authorization``), secrets revealed: for the
        request only, never for a log."""
        sent = {name: value.reveal() for name, value in self.headers}
        if self.username is not None and self.password is not None:
            sent["Authorization"] = aiohttp.encode_basic_auth(self.username, self.password.reveal())
        return sent

    def __bool__(self) -> bool:
        return bool(self.headers) or self.username is not None


# Not a row of any table (no key, no flag): the settings set it from the rows above, sources read it.
CREDENTIALS: Field[FeedCredentials] = Field(
    "credentials", "resolved from headers, username and password_env", lambda value: value, FeedCredentials(),
    part="reading", cli=False,
)  # fmt: skip


def resolve_secrets(options: Options, source: str, where: str, environ: Mapping[str, str]) -> Options:
    """``options`` with the secrets their rows name read from ``environ`` (``CREDENTIALS``); a
    TAXII feed's ``source`` must be an http(s) URL, and only such feeds take credentials."""
    username, password_env = options[USERNAME], options[PASSWORD_ENV]
    remote = source.lower().startswith(("http://", "https://"))
    if options[FORMAT] == TAXII and not remote:
        raise ConfigError(
            f"{where}: a TAXII feed's source is its collection URL (https://.../collections/ID/)"
        )
    if not remote and (options[HEADERS] or username is not None or password_env is not None):
        raise ConfigError(
            f"{where}: keys 'headers', 'username' and 'password_env' apply to http(s) feeds only"
        )
    if (username is None) != (password_env is None):
        raise ConfigError(
            f"{where}: HTTP Basic needs both keys 'username' and 'password_env' (the variable holding "
            "the password), or neither"
        )
    headers = tuple(
        (name, _read(environ, variable, where, f"header {name!r}")) for name, variable in options[HEADERS]
    )
    password = None if password_env is None else _read(environ, password_env, where, "key 'password_env'")
    credentials = FeedCredentials(headers, username, password)
    return options.updated({CREDENTIALS.key: credentials}) if credentials else options


def _read(environ: Mapping[str, str], variable: str, where: str, what: str) -> Secret:
    value = environ.get(variable, "")
    if not value:
        raise ConfigError(f"{where}: {what} names the environment variable {variable}, which is not set")
    return Secret(value)
