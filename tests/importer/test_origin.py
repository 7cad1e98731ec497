"""The bearer token goes to the API's origin only, and the client secret to the token URL only.

Two loopback servers on two ports are two origins: the API (or the token endpoint) and
``elsewhere``, which would answer whatever it is asked and records who asked. The API redirecting
there, or handing out a paging link there, and the token endpoint redirecting there (307/308
would re-post the secret; a 302's target could hand out a token of its choosing) all end the run
with one sentence naming where it pointed — and ``elsewhere`` hears nothing at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from importer.emulator import DEMO_CLIENT, Emulator, EmulatorConfig
from importer.errors import ConfigError
from importer.targets.registry import package
from importer.transport.http import open_http
from importer.transport.stats import TransportStats
from importer.transport.urls import origin_of
from tests.helpers import (
    FakeTime,
    RecordingServer,
    connection_settings,
    recording_server,
    run_cli,
    use_emulator,
    write_list,
)


async def _would_answer_anything(request: web.Request) -> web.StreamResponse:
    # What a host that has been handed the token or the secret would do: play along.
    if request.path.endswith("/token"):
        return web.json_response({"access_token": "chosen-by-elsewhere", "expires_in": 3600})
    return web.json_response({"value": []})


def _one_sentence(err: str) -> str:
    """The first problem line on stderr (the feed's error; a count of what was not sent may follow)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all(line.startswith("ti-import: ") for line in lines) and "Traceback" not in err, err
    return lines[0]


def _assert_never_reached(elsewhere: RecordingServer) -> None:
    assert elsewhere.seen == [], [(s.method, s.path_qs, s.authorization) for s in elsewhere.seen]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_an_api_redirect_to_another_origin_is_an_error_naming_where_it_pointed(
    status: int,
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    feed = write_list(tmp_path / "h.txt", 5)
    async with recording_server(_would_answer_anything) as elsewhere:

        async def redirect(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": elsewhere.url(request.path_qs)})

        async with recording_server(redirect) as api:
            use_emulator(monkeypatch, emulator, api_url=api.url("/V1.0/"))
            assert await run_cli("-q", "--no-state", str(feed)) == 2
    line = _one_sentence(capsys.readouterr().err)
    assert f"HTTP {status}, a redirect to {elsewhere.base}/V1.0/AlertDefinitions" in line, line
    assert "follow no redirect" in line and "TI_API_URL" in line
    # The API itself was asked, with the token; where it pointed, nothing.
    assert api.seen and (api.seen[0].authorization or "").startswith("Bearer ")
    _assert_never_reached(elsewhere)


async def test_a_next_link_to_another_origin_is_an_error_naming_both_origins(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = write_list(tmp_path / "h.txt", 5)
    async with recording_server(_would_answer_anything) as elsewhere:

        async def page_elsewhere(request: web.Request) -> web.StreamResponse:
            link = elsewhere.url("/V1.0/AlertDefinitions?$skip=1")
            return web.json_response({"value": [], "@odata.nextLink": link})

        async with recording_server(page_elsewhere) as api:
            use_emulator(monkeypatch, emulator, api_url=api.url("/V1.0/"))
            assert await run_cli("-q", "--no-state", str(feed)) == 2
    line = _one_sentence(capsys.readouterr().err)
    assert origin_of(api.base) in line and origin_of(elsewhere.base) in line, line
    assert "paging link to another origin" in line
    _assert_never_reached(elsewhere)


@pytest.mark.parametrize("emulator", [EmulatorConfig(page_size=2)], indirect=True)
async def test_next_links_on_the_api_origin_are_still_followed(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Without a journal the rerun lists the definition: five IOCs, two a page, through the
    # emulator's own absolute links. All five are found there, none is sent again.
    feed = write_list(tmp_path / "h.txt", 5)
    use_emulator(monkeypatch, emulator)
    assert await run_cli("-q", "--no-state", str(feed)) == 0
    before = emulator.state()["totals"]["iocs"]
    assert await run_cli("-q", "--no-state", str(feed)) == 0
    assert before == emulator.state()["totals"]["iocs"] == 5


async def test_the_middleware_adds_the_token_to_the_api_origin_only(
    emulator: Emulator, fake_time: FakeTime
) -> None:
    async with recording_server(_would_answer_anything) as elsewhere:
        settings = connection_settings(emulator)
        audience = package("ti").default_audience
        async with open_http(
            settings,
            TransportStats(),
            default_audience=audience,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        ) as http:
            assert (await http.request("GET", emulator.ti_url + "AlertDefinitions"))["value"] == []
            # A caller's mistake, or a link that slipped through: the request goes, the token does not.
            await http.request("GET", elsewhere.url("/V1.0/AlertDefinitions"))
            async with http.session.get(elsewhere.url("/direct"), headers={"Authorization": "Bearer x"}):
                pass
    assert [s.path_qs for s in elsewhere.seen] == ["/V1.0/AlertDefinitions", "/direct"]
    assert [s.authorization for s in elsewhere.seen] == [None, None]


@pytest.mark.parametrize("status", [302, 307, 308])
async def test_a_token_url_that_redirects_is_an_error_and_the_secret_goes_nowhere_else(
    status: int,
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    feed = write_list(tmp_path / "h.txt", 5)
    async with recording_server(_would_answer_anything) as elsewhere:

        async def redirect(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": elsewhere.url("/t/oauth2/token")})

        async with recording_server(redirect) as token:
            use_emulator(monkeypatch, emulator)
            monkeypatch.setenv("TI_AUTH_URL", token.url("/contoso/oauth2/token"))
            assert await run_cli("-q", "--no-state", str(feed)) == 2
    line = _one_sentence(capsys.readouterr().err)
    assert f"the token endpoint {token.url('/contoso/oauth2/token')} answered HTTP {status}" in line, line
    assert f"a redirect to {elsewhere.url('/t/oauth2/token')}" in line and "TI_AUTH_URL" in line
    assert DEMO_CLIENT.client_secret not in line
    # The configured token URL got the form (the secret's one destination); nobody else got anything.
    assert [s.method for s in token.seen] == ["POST"]
    _assert_never_reached(elsewhere)
    assert emulator.state()["requests_by_status"] == {}  # no API call made with any token


async def test_a_paging_link_that_is_not_a_url_is_a_config_error() -> None:
    from importer.transport.odata import odata_pages  # noqa: PLC0415 -- the one function under test

    async def answer(url: str, query: object) -> object:
        return {"value": [{"Id": 1}], "@odata.nextLink": "http://[::1"}

    pages = odata_pages(answer, "https://api.example/V1.0/", "AlertDefinitions", {}, 10)
    assert await pages.__anext__() == [{"Id": 1}]
    with pytest.raises(ConfigError, match="paging link that is not a URL"):
        await pages.__anext__()
