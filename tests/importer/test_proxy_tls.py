"""Behind a corporate proxy with a private CA: HTTPS_PROXY/HTTP_PROXY/NO_PROXY and --ca-bundle.

The emulator serves over TLS with a certificate of a private CA (``trustme``), as a TLS-inspecting
proxy would present one. Without the CA the run ends in one sentence saying what to do (exit 2);
with ``--ca-bundle`` (or ``SSL_CERT_FILE``, or ``[target] ca_bundle``) it imports; with
``HTTPS_PROXY`` pointing at a real forward proxy on loopback, the proxy carries the token and API
calls (it saw the CONNECT), unless ``NO_PROXY`` names the host. Feed downloads go the same way.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from feeds.model import FeedError
from importer.emulator import Emulator
from importer.sources.download import download
from importer.transport.connection import NetworkSettings
from tests.helpers import (
    ForwardProxy,
    forward_proxy,
    https_emulator,
    recording_server,
    run_cli,
    use_emulator,
    write_list,
)

_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def _no_inherited_network_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test says which proxy and which extra CA it runs with; the machine's own do not count.
    for name in (*_PROXY_VARIABLES, "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
async def tls_emulator(server_tls: ssl.SSLContext) -> AsyncIterator[Emulator]:
    async with https_emulator(server_tls) as emu:
        yield emu


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    async with forward_proxy() as running:
        yield running


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[Path]:
    yield write_list(tmp_path / "hashes.txt", 7)


def _lines(err: str) -> list[str]:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and all(line.startswith("ti-import: ") for line in lines), err
    return lines


def _host_port(emu: Emulator) -> str:
    return emu.base_url.removeprefix("https://")


async def test_an_untrusted_certificate_is_one_sentence_saying_what_to_do(
    tls_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, feed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, tls_emulator)
    assert await run_cli("-q", "--no-state", str(feed)) == 2
    first = _lines(capsys.readouterr().err)[0]
    assert f"the TLS certificate of {_host_port(tls_emulator)} is not trusted" in first, first
    assert "--ca-bundle" in first
    assert tls_emulator.state()["tokens_issued"] == 0


async def test_the_ca_bundle_adds_the_private_ca(
    tls_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, feed: Path, ca_file: Path
) -> None:
    use_emulator(monkeypatch, tls_emulator)
    assert await run_cli("-q", "--no-state", "--ca-bundle", str(ca_file), str(feed)) == 0
    assert tls_emulator.state()["totals"]["iocs"] == 7


async def test_ssl_cert_file_adds_the_private_ca_too(
    tls_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, feed: Path, ca_file: Path
) -> None:
    use_emulator(monkeypatch, tls_emulator)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    assert await run_cli("-q", "--no-state", str(feed)) == 0
    assert tls_emulator.state()["totals"]["iocs"] == 7


async def test_a_config_files_ca_bundle_is_its_neighbour(
    tls_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, feed: Path, ca_file: Path, tmp_path: Path
) -> None:
    use_emulator(monkeypatch, tls_emulator)
    config = tmp_path / "run.toml"
    config.write_text(f"[target]\nca_bundle = '{ca_file.name}'\n\n[[feed]]\nsource = '{feed}'\n")
    monkeypatch.chdir(tmp_path.parent)  # not the file's folder: the key is read relative to the file
    assert await run_cli("-q", "--no-state", "--config", str(config)) == 0


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "does not exist"), ("not a certificate\n", "holds no PEM certificate")],
)
async def test_an_unusable_ca_bundle_is_a_configuration_error(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    feed: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    says: str,
) -> None:
    use_emulator(monkeypatch, emulator)
    bundle = tmp_path / "bundle.pem"
    if content is not None:
        bundle.write_text(content)
    assert await run_cli("-q", "--no-state", "--ca-bundle", str(bundle), str(feed)) == 2
    assert _lines(capsys.readouterr().err) == [f"ti-import: --ca-bundle: the CA bundle {bundle} {says}"]
    assert emulator.state()["tokens_issued"] == 0


async def test_https_proxy_carries_the_token_and_api_calls(
    tls_emulator: Emulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, feed: Path, ca_file: Path
) -> None:
    use_emulator(monkeypatch, tls_emulator)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    assert await run_cli("-q", "--no-state", "--ca-bundle", str(ca_file), str(feed)) == 0
    assert tls_emulator.state()["totals"]["iocs"] == 7
    assert proxy.seen and set(proxy.seen) == {f"CONNECT {_host_port(tls_emulator)}"}, proxy.seen


async def test_no_proxy_sends_its_hosts_direct(
    tls_emulator: Emulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, feed: Path, ca_file: Path
) -> None:
    use_emulator(monkeypatch, tls_emulator)
    monkeypatch.setenv("https_proxy", proxy.url)
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    assert await run_cli("-q", "--no-state", "--ca-bundle", str(ca_file), str(feed)) == 0
    assert proxy.seen == []


async def test_feed_downloads_go_through_the_proxies_and_trust_the_bundle(
    emulator: Emulator,
    server_tls: ssl.SSLContext,
    proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    feed: Path,
    ca_file: Path,
) -> None:
    body = feed.read_bytes()

    async def serve_feed(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="text/plain")

    use_emulator(monkeypatch, emulator)  # plain http on loopback: the API calls stay direct
    async with (
        recording_server(serve_feed, server_tls=server_tls) as secure,
        recording_server(serve_feed) as plain,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", emulator.base_url.removeprefix("http://"))  # host:port
        https_feed, http_feed = secure.url("/a.txt"), plain.url("/b.txt")
        args = ("-q", "--no-state", "--ca-bundle", str(ca_file), https_feed, http_feed)
        assert await run_cli(*args) == 0
    assert sorted(proxy.seen) == sorted(
        [f"CONNECT {secure.base.removeprefix('https://')}", f"GET {http_feed}"]
    ), proxy.seen
    assert [s.path_qs for s in secure.seen] == ["/a.txt"] and [s.path_qs for s in plain.seen] == ["/b.txt"]


@pytest.mark.parametrize("allow_http", [False, True])
async def test_a_download_redirected_from_https_to_plain_http_is_refused(
    server_tls: ssl.SSLContext, ca_file: Path, feed: Path, allow_http: bool
) -> None:
    # A downgrade is how a feed gets swapped on the way: refused even where plain http is allowed.
    body = feed.read_bytes()

    async def serve_feed(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body)

    async with recording_server(serve_feed) as plain:

        async def downgrade(request: web.Request) -> web.StreamResponse:
            return web.Response(status=302, headers={"Location": plain.url("/feed.txt")})

        async with recording_server(downgrade, server_tls=server_tls) as secure:
            network = NetworkSettings(ca_bundle=str(ca_file), allow_http=allow_http)
            with pytest.raises(FeedError) as refused:
                async with download(secure.url("/feed.txt"), network=network):
                    pass
    assert str(refused.value) == (
        f"downloading {secure.url('/feed.txt')} stopped: the server redirected from https to "
        f"{plain.url('/feed.txt')}, and a downgrade to plain http is refused"
    )
    assert plain.seen == []


async def test_a_download_follows_https_redirects(
    server_tls: ssl.SSLContext, ca_file: Path, feed: Path
) -> None:
    body = feed.read_bytes()

    async def serve(request: web.Request) -> web.StreamResponse:
        if request.path == "/old":
            return web.Response(status=301, headers={"Location": "/new"})
        return web.Response(body=body)

    network = NetworkSettings(ca_bundle=str(ca_file))
    async with (
        recording_server(serve, server_tls=server_tls) as secure,
        download(secure.url("/old"), network=network) as path,
    ):
        assert path.read_bytes() == body
    assert [s.path_qs for s in secure.seen] == ["/old", "/new"]
