"""``[[destination]]`` tables read into one ``RunSettings`` each: credentials from the variables each
names (never the run's ``TI_*``), a feed's ``destinations``, ``--destination``, another target's feed
option ignored rather than refused, and every mistake one sentence naming the table and key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from importer.errors import ConfigError
from importer.settings import CliOptions, load_destinations, load_run_settings
from importer.transport.connection import CredentialNames

WORKSPACE = "7d3c9a52-4b1e-4f0a-9c62-5e8b1d2a4f10"
ENV = {
    "A_ID": "app-a", "A_SECRET": "secret-a", "B_ID": "app-b", "B_SECRET": "secret-b", "A_CERT": "a.pem",
    # The single-target run's variables: a destination must not pick them up.
    "TI_CLIENT_ID": "ambient", "TI_CLIENT_SECRET": "ambient-secret", "TI_WORKSPACE_ID": "0" * 32,
    "TI_API_URL": "https://ambient.example/",
}  # fmt: skip
TWO = f"""
[[destination]]
name = "contoso"
target = "mde"
tenant = "contoso.onmicrosoft.com"
client_id_env = "A_ID"
client_secret_env = "A_SECRET"

[[destination]]
name = "fabrikam"
target = "sentinel"
auth_url = "https://login.example/fabrikam/oauth2/token"
workspace_id = "{WORKSPACE}"
client_id_env = "B_ID"
client_secret_env = "B_SECRET"
workers = 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, **cli: object) -> dict[str, object]:
    found = load_destinations(CliOptions(config=write(tmp_path, text), **cli), ENV)  # type: ignore[arg-type]
    return {d.name: d.settings for d in found}


FEEDS = """
[[feed]]
source = "all.txt"
category = "Malware"

[[feed]]
source = "sentinel-only.txt"
destinations = ["fabrikam"]
"""


def test_each_destination_its_target_credentials_and_feeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    found = load(tmp_path, TWO + FEEDS)
    contoso, fabrikam = found["contoso"], found["fabrikam"]
    assert contoso.target == "mde" and fabrikam.target == "sentinel"  # type: ignore[attr-defined]
    c, f = contoso.connection, fabrikam.connection  # type: ignore[attr-defined]
    assert (c.client_id, c.client_secret.reveal()) == ("app-a", "secret-a")
    assert (f.client_id, f.client_secret.reveal()) == ("app-b", "secret-b")
    assert c.names == CredentialNames("A_ID", "A_SECRET")  # what its errors' advice names
    assert c.auth_url == "https://login.windows.net/contoso.onmicrosoft.com/oauth2/token"
    assert c.api_url.startswith("https://api.security") and "ambient" not in f.api_url
    assert f.option("workspace_id") == WORKSPACE
    assert [feed.definition.name for feed in contoso.feeds] == ["all.txt"]  # type: ignore[attr-defined]
    assert [feed.definition.name for feed in fabrikam.feeds] == ["all.txt", "sentinel-only.txt"]  # type: ignore[attr-defined]
    assert fabrikam.tuning.workers == 3 and contoso.tuning.workers == 16  # type: ignore[attr-defined]
    assert fabrikam.tuning.batch_size == 100  # type: ignore[attr-defined]  # sentinel's most
    assert "key 'category' applies to the ti target only: ignored for this mde destination" in caplog.text
    assert "secret-a" not in caplog.text


def test_the_destination_flag_picks_some(tmp_path: Path) -> None:
    assert list(load(tmp_path, TWO + FEEDS, destinations=("fabrikam",))) == ["fabrikam"]
    with pytest.raises(
        ConfigError, match="--destination names the destination 'nowhere'; the config has contoso, fabrikam"
    ):
        load(tmp_path, TWO + FEEDS, destinations=("nowhere",))
    # One picked: the commands that take one destination (verify) read it; several are refused.
    one = load_run_settings(CliOptions(config=write(tmp_path, TWO + FEEDS), destinations=("contoso",)), ENV)
    assert one.destination == "contoso" and one.name == "contoso"
    with pytest.raises(ConfigError, match="takes one destination, and the config has contoso, fabrikam"):
        load_run_settings(CliOptions(config=write(tmp_path, TWO + FEEDS)), ENV)


def test_a_config_without_destinations_is_one_named_after_its_target(tmp_path: Path) -> None:
    env = {"TI_CLIENT_ID": "app", "TI_CLIENT_SECRET": "s", "TI_TENANT": "t"}
    found = load_destinations(CliOptions(feeds=("a.txt",), target="mde", destinations=("mde",)), env)
    assert [(d.name, d.settings.destination) for d in found] == [("mde", None)]
    with pytest.raises(
        ConfigError, match="no \\[\\[destination\\]\\] tables, so its one destination is named"
    ):
        load_destinations(CliOptions(feeds=("a.txt",), target="mde", destinations=("contoso",)), env)


@pytest.mark.parametrize(
    ("extra", "cli", "message"),
    [
        ("[auth]\nclient_id = 'x'\n", {}, "\\[auth\\] is for a single target"),
        ("[target]\napi_url = 'https://x.example/'\n", {}, "\\[target\\] key 'api_url' belongs in each"),
        ("", {"target": "ti"}, "--target is for a config without"),
        ("[[feed]]\nsource = 'x.txt'\ndestinations = ['elsewhere']\n", {},
         "destinations' names the destination 'elsewhere'"),
        ("[[feed]]\nsource = 'x.txt'\ndestinations = 'contoso'\n", {}, "must be a list of destination names"),
    ],
)  # fmt: skip
def test_single_target_ways_and_unknown_names_are_refused(
    tmp_path: Path, extra: str, cli: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, extra + TWO + FEEDS, **cli)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('name = "x"\ntarget = "mde"\nclient_secret_env = "A_SECRET"\n', "'client_id_env' is required"),
        ('name = "x"\ntarget = "mde"\nclient_id_env = "A_ID"\n', "give client_secret_env"),
        ('name = "x"\ntarget = "mde"\nclient_id_env = "A_ID"\nclient_secret_env = "UNSET"\n',
         "names the environment variable UNSET, which is not set"),
        # Said with the variables the destination names, not the run's TI_CLIENT_*.
        ('name = "x"\ntarget = "mde"\nclient_id_env = "A_ID"\nclient_secret_env = "A_SECRET"\n'
         'client_cert_env = "A_CERT"\n',
         "both a client secret \\(A_SECRET\\) and a client certificate \\(A_CERT\\) are given"),
        ('name = "x"\ntarget = "mde"\nclient_id_env = "A_ID"\nclient_secret_env = "A_SECRET"\n'
         'workspace_id = "w"\n',
         "key 'workspace_id' applies to the sentinel target only, not mde"),
        ('name = "two words"\ntarget = "mde"\n', "key 'name' is required: letters, digits"),
        ('name = "x"\ntarget = "nope"\n', "key 'target'"),
        ('name = "x"\ntarget = "mde"\nsecret = "s"\n', "unknown key 'secret'"),
    ],
)  # fmt: skip
def test_a_bad_destination_is_one_sentence(tmp_path: Path, table: str, message: str) -> None:
    text = f'[[destination]]\n{table}tenant = "t"\n\n[[feed]]\nsource = "a.txt"\n'
    with pytest.raises(ConfigError, match=message) as caught:
        load(tmp_path, text)
    assert "secret-a" not in str(caught.value)


def test_two_destinations_need_two_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="two \\[\\[destination\\]\\] tables are named 'contoso'"):
        load(tmp_path, TWO.replace('"fabrikam"', '"contoso"') + FEEDS)
