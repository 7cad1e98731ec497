"""Authenticated http(s) feeds: headers whose values come from the environment, never from the config.

A feed server on loopback wants abuse.ch's ``Auth-Key``; the config says where the key lives
(``headers = { "Auth-Key" = "env:ABUSECH_AUTH_KEY" }``). The key reaches that server and no other
(a redirect to another origin is followed without it), and no report, log line or journal holds
it. A variable that is not set, or a literal value in the config, ends the run with one sentence
(exit 2) that shows no secret.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from importer.emulator import Emulator
from tests.helpers import recording_server, run_cli, sha256, use_emulator

KEY = "abusech-key-7f3a9c0e5b"  # what the environment holds; nowhere else
FEED = "\n".join(sha256(n) for n in range(5)) + "\n"


def config(tmp_path: Path, source: str, headers: str = '{ "Auth-Key" = "env:ABUSECH_AUTH_KEY" }') -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(f'[[feed]]\nsource = "{source}"\nname = "abuse"\nheaders = {headers}\n', encoding="utf-8")
    return path


def serving(keys: list[str | None]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A feed server that notes the ``Auth-Key`` it is sent, and answers 401 without the right one."""

    async def handler(request: web.Request) -> web.StreamResponse:
        keys.append(request.headers.get("Auth-Key"))
        if request.headers.get("Auth-Key") != KEY:
            return web.Response(status=401, text="missing Auth-Key")
        return web.Response(text=FEED)

    return handler


async def test_the_key_goes_to_the_feed_and_nowhere_else(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    monkeypatch.setenv("ABUSECH_AUTH_KEY", KEY)
    keys: list[str | None] = []
    async with recording_server(serving(keys)) as feeds:
        state, report = tmp_path / "state.sqlite", tmp_path / "report.json"
        cfg = config(tmp_path, feeds.url("/export.txt"))
        code = await run_cli("-v", "--config", str(cfg), "--state", str(state), "--report", str(report))
    assert code == 0 and keys == [KEY]
    assert '"imported": 5' in report.read_text(encoding="utf-8")
    out, err = capfd.readouterr()
    for where in (report.read_bytes(), state.read_bytes(), cfg.read_bytes(), (out + err).encode()):
        assert KEY.encode() not in where


async def test_a_redirect_elsewhere_is_followed_without_the_key(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_emulator(monkeypatch, emulator)
    monkeypatch.setenv("ABUSECH_AUTH_KEY", KEY)
    elsewhere_keys: list[str | None] = []
    async with recording_server(serving(elsewhere_keys)) as elsewhere:

        async def moved(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(elsewhere.url("/export.txt"))

        async with recording_server(moved) as feeds:
            code = await run_cli("-q", "--no-state", "--config", str(config(tmp_path, feeds.url("/x"))))
    assert code == 2  # the other origin, asked without the key, refuses
    assert elsewhere_keys == [None]


async def test_a_missing_variable_or_a_literal_value_is_one_sentence(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    monkeypatch.delenv("ABUSECH_AUTH_KEY", raising=False)
    cfg = config(tmp_path, "https://feeds.example/export.txt")
    assert await run_cli("-q", "--no-state", "--config", str(cfg)) == 2
    err = capfd.readouterr().err
    assert "ABUSECH_AUTH_KEY, which is not set" in err and "Traceback" not in err
    literal = config(tmp_path, "https://feeds.example/export.txt", headers=f'{{ "Auth-Key" = "{KEY}" }}')
    assert await run_cli("-q", "--no-state", "--config", str(literal)) == 2
    err = capfd.readouterr().err
    assert 'as "env:VARIABLE"' in err and KEY not in err
    local = config(tmp_path, "feed.txt")
    assert await run_cli("-q", "--no-state", "--config", str(local)) == 2
    assert "apply to http(s) feeds only" in capfd.readouterr().err
