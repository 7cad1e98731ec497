"""Which URLs the importer uses, and how the settings refuse the others: one sentence naming the
variable or key, exit 2, before any request.

Plain http goes to this machine only (the emulator) unless ``--allow-http`` (or ``[target]
allow_http = true``), which warns once; a port out of range is a configuration error, not a
traceback or "the answer was not valid JSON"; a feed download stops at ``max_download_bytes``.
The emulator warns when it listens where other machines reach it.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from feeds.model import FeedError
from importer.emulator import DEMO_CLIENT, Emulator
from importer.errors import ConfigError
from importer.settings import CliOptions, load_run_settings
from importer.sources.download import download
from importer.transport.connection import NetworkSettings
from importer.transport.proxies import Proxies, proxies_of
from importer.transport.urls import is_loopback, origin_of, url_problem
from tests.helpers import ROOT, recording_server, run_cli, use_emulator, write_list

ENV = {
    "TI_CLIENT_ID": DEMO_CLIENT.client_id,
    "TI_CLIENT_SECRET": DEMO_CLIENT.client_secret,
    "TI_AUTH_URL": "https://login.example/contoso/oauth2/token",
    "TI_API_URL": "https://api.example/V1.0/",
}


def _settings(tmp_path: Path, env: dict[str, str], **cli: object) -> None:
    feed = write_list(tmp_path / "h.txt", 1)
    load_run_settings(CliOptions(feeds=(str(feed),), **cli), env)  # type: ignore[arg-type]


@pytest.mark.parametrize("variable", ["TI_AUTH_URL", "TI_API_URL"])
async def test_a_port_out_of_range_is_a_configuration_error_naming_the_variable(
    variable: str,
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_emulator(monkeypatch, emulator)
    monkeypatch.setenv(variable, "http://127.0.0.1:99999/contoso/oauth2/token")
    assert await run_cli("-q", "--no-state", str(write_list(tmp_path / "h.txt", 3))) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ti-import: {variable} has an unusable port 99999 (ports go from 1 to 65535): "
        "http://127.0.0.1:99999/contoso/oauth2/token\n"
    )
    assert emulator.state()["tokens_issued"] == 0


def test_a_config_files_url_is_named_by_its_table_and_key(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("[auth]\nurl = 'https://login.example:0/t/oauth2/token'\n")
    env = {k: v for k, v in ENV.items() if k != "TI_AUTH_URL"}
    with pytest.raises(ConfigError) as refused:
        _settings(tmp_path, env, config=config)
    assert str(refused.value).startswith(f"{config}: [auth] key 'url' has an unusable port 0 ")


@pytest.mark.parametrize("variable", ["TI_AUTH_URL", "TI_API_URL"])
def test_plain_http_to_another_machine_is_refused_unless_allowed(
    variable: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {**ENV, variable: "http://other.example/x/"}
    with pytest.raises(ConfigError) as refused:
        _settings(tmp_path, env)
    assert str(refused.value) == (
        f"{variable} is plain http to other.example, another machine: use https (plain http only to "
        "this machine, or with --allow-http)"
    )
    with caplog.at_level(logging.WARNING, logger="importer.settings"):
        _settings(tmp_path, env, allow_http=True)
    (warning,) = caplog.records
    assert "plain http is allowed (--allow-http)" in warning.getMessage()


def test_allow_http_in_the_config_files_target_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "run.toml"
    config.write_text("[target]\nallow_http = true\napi_url = 'http://api.example/V1.0/'\n")
    with caplog.at_level(logging.WARNING, logger="importer.settings"):
        _settings(tmp_path, {**ENV, "TI_API_URL": ""}, config=config)
    assert len(caplog.records) == 1
    config.write_text("[target]\nallow_http = 'yes'\n")
    with pytest.raises(ConfigError, match=r"\[target\]: key 'allow_http' must be true or false"):
        _settings(tmp_path, ENV, config=config)


def test_a_wrong_config_value_is_reported_even_where_the_environment_overrides_it(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("[auth]\nurl = 5\n")
    with pytest.raises(ConfigError, match=r"\[auth\]: key 'url' must be a string, got 5"):
        _settings(tmp_path, ENV, config=config)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://api.example/V1.0/", None),
        ("http://127.0.0.1:8080/V1.0/", None),
        ("http://127.1.2.3/", None),
        ("http://[::1]:8080/", None),
        ("http://LOCALHOST./", None),
        ("ftp://api.example/", "must be an https:// URL, got ftp://api.example/"),
        ("https:///V1.0/", "has no host name: https:///V1.0/"),
        ("https://h:65536/", "has an unusable port 65536 (ports go from 1 to 65535): https://h:65536/"),
        ("https://h:x/", "has an unusable port x (ports go from 1 to 65535): https://h:x/"),
        ("http://u:pw@h.example/?key=1", "is plain http to h.example, another machine"),
    ],
)
def test_url_problems(url: str, problem: str | None) -> None:
    found = url_problem(url, allow_http=False)
    assert found == problem if problem is None else (found or "").startswith(problem)
    assert "pw" not in (found or "") and "key=1" not in (found or "")  # user info and query stay out


def test_origins_and_loopback() -> None:
    assert (
        origin_of("https://API.example/V1.0/")
        == origin_of("https://api.example:443/x")
        == "https://api.example:443"
    )
    assert origin_of("https://api.example:8443/") != origin_of("https://api.example/")
    assert origin_of("http://api.example/") != origin_of("https://api.example/")
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "10.0.0.1", "", None)] == [
        True, True, True, True, False, False, False,
    ]  # fmt: skip


def test_proxy_variables_and_their_choice() -> None:
    env = {
        "HTTPS_PROXY": "http://upper:1",
        "https_proxy": "http://u:s3cret@lower:3128",
        "NO_PROXY": ".corp,h:8443",
    }
    network = NetworkSettings(proxies=proxies_of(env))
    assert dict(network.proxies) == {"https": "http://u:s3cret@lower:3128", "no": ".corp,h:8443"}
    proxies = Proxies(network)
    proxy, headers = proxies.for_url("https://api.example/V1.0/")
    assert str(proxy) == "http://lower:3128"
    assert headers == {"Proxy-Authorization": "Basic " + base64.b64encode(b"u:s3cret").decode()}
    assert proxies.for_url("https://a.corp/") == (None, None)
    assert proxies.for_url("https://h:8443/") == (None, None)
    assert proxies.for_url("https://h/")[0] is not None
    assert proxies.for_url("http://plain.example/") == (None, None)  # no HTTP_PROXY
    assert proxies_of({"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}) == ()  # httpoxy


async def test_a_plain_http_feed_from_another_machine_is_refused_before_connecting() -> None:
    with pytest.raises(FeedError, match=r"^the feed URL is plain http to 192\.0\.2\.1, another machine"):
        async with download("http://192.0.2.1/feed.txt"):
            pass


async def test_the_download_cap_is_a_per_feed_option(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = write_list(tmp_path / "h.txt", 10).read_bytes()  # 650 bytes

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body)

    use_emulator(monkeypatch, emulator)
    async with recording_server(serve) as server:
        big, small = server.url("/capped.txt"), server.url("/free.txt")
        config = tmp_path / "run.toml"
        config.write_text(
            f"[[feed]]\nsource = '{big}'\nmax_download_bytes = 600\n\n[[feed]]\nsource = '{small}'\n"
        )
        assert await run_cli("-q", "--no-state", "--config", str(config)) == 2
        assert f"downloading {big} stopped: larger than 600 bytes" in capsys.readouterr().err
        assert emulator.state()["totals"]["iocs"] == 10  # the other feed, whole
        assert await run_cli("-q", "--no-state", "--max-download-bytes", "100", small) == 2
        assert f"downloading {small} stopped: larger than 100 bytes" in capsys.readouterr().err


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("0.0.0.0", True)])
def test_the_emulator_warns_when_other_machines_can_reach_it(host: str, warned: bool) -> None:
    command = [sys.executable, "-m", "importer", "emulator", "--host", host, "--port", "0"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "listening on" in proc.stdout.readline()  # serving: any warning came before this line
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    lines = err.splitlines()
    if warned:
        assert len(lines) == 1 and "not loopback" in lines[0] and "/_emulator/*" in lines[0], err
        assert "no authentication" in lines[0]
    else:
        assert lines == []
