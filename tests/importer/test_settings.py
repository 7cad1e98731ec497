"""Settings from flags, environment and TOML: precedence, defaults, and one-sentence config errors."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feeds.model import Detection
from importer.errors import ConfigError
from importer.fields import DETECTION_FUNCTION, FORMAT, SEVERITY, TITLE, default_definition_name
from importer.settings import CliOptions, load_run_settings, parse_rate
from importer.targets.registry import all_fields

# Target-specific rows by key (through the registry: this is not a target's own test).
ROWS = {row.key: row for row in all_fields()}
ACTION, APPLICATION, GENERATE_ALERT = ROWS["action"], ROWS["application"], ROWS["generate_alert"]
RBAC_GROUPS, CATEGORY, ENABLED = ROWS["rbac_groups"], ROWS["category"], ROWS["enabled"]

ENV = {
    "TI_CLIENT_ID": "app-id",
    "TI_CLIENT_SECRET": "s3cret-value",
    "TI_AUTH_URL": "https://login.windows.net/contoso/oauth2/token",
}
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_flags_build_one_feed_with_defaults_and_environment_credentials() -> None:
    settings = load_run_settings(
        CliOptions(feeds=("data/bad-hashes.csv",), feed_options={"severity": "high"}), ENV, now=NOW
    )
    (feed,) = settings.feeds
    assert feed.definition.name == "bad-hashes.csv"
    assert feed.definition[SEVERITY] == "High"
    assert feed.definition[TITLE] == "Threat intelligence: bad-hashes.csv"
    assert settings.connection.client_id == "app-id"
    assert settings.connection.client_secret.reveal() == "s3cret-value"
    assert settings.connection.api_url == "https://ti.securitycenter.windows.com/V1.0/"
    assert "s3cret" not in repr(settings)
    assert (
        settings.tuning.mode == "bulk" and settings.tuning.batch_size == 500 and settings.tuning.workers == 16
    )


def test_config_file_with_tables_and_feeds(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[target]
api_url = "http://127.0.0.1:9/V1.0/"
[auth]
tenant = "contoso"
client_id = "from-file"
[tuning]
mode = "single"
workers = 4
rate = "10/s"
[[feed]]
source = "https://example.org/feed.csv"
name = "Abuse feed"
category = "Malware"
detection_function = "startwith"
expire_days = 30
enabled = false
[[feed]]
source = "hashes.txt.gz"
format = "list"
""",
    )
    env = {"TI_CLIENT_SECRET": "x"}
    settings = load_run_settings(CliOptions(config=path, workers=8), env, now=NOW)
    first, second = settings.feeds
    assert first.definition.name == "Abuse feed" and first.definition[CATEGORY] == "Malware"
    assert first.definition[DETECTION_FUNCTION] is Detection.STARTS_WITH
    assert first.definition.expires_at == NOW + timedelta(days=30)
    assert first.definition[ENABLED] is False
    assert second.definition.name == "hashes.txt.gz" and second[FORMAT] == "list"
    assert settings.connection.auth_url == "https://login.windows.net/contoso/oauth2/token"
    assert settings.connection.api_url == "http://127.0.0.1:9/V1.0/"
    assert settings.connection.client_id == "from-file"
    assert settings.connection.rate_per_minute == 600
    assert settings.tuning.mode == "single" and settings.tuning.workers == 8  # the flag wins


def test_environment_wins_over_the_config_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[auth]\nclient_id = "file"\nclient_secret = "file-secret"\nurl = "https://a/t"\n'
        '[[feed]]\nsource = "x.txt"\n',
    )
    settings = load_run_settings(CliOptions(config=path), ENV, now=NOW)
    assert settings.connection.client_id == "app-id"
    assert settings.connection.client_secret.reveal() == "s3cret-value"
    assert settings.connection.auth_url == ENV["TI_AUTH_URL"]


def test_a_secret_in_a_world_readable_config_file_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = (
        '[auth]\nclient_id = "a"\nclient_secret = "file-secret"\ntenant = "t"\n[[feed]]\nsource = "x.txt"\n'
    )
    path = write(tmp_path, text, mode=0o644)
    with caplog.at_level(logging.WARNING):
        load_run_settings(CliOptions(config=path), {}, now=NOW)
    assert "readable by every user" in caplog.text and "file-secret" not in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        load_run_settings(CliOptions(config=path), {}, now=NOW)
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[feed]]\nsource = 'a'\nseverity = 'Critical'\n", "[[feed]] #1: key 'severity' must be one of"),
        ("[[feed]]\nsource = 'a'\nsevrity = 'High'\n", "[[feed]] #1: unknown key 'sevrity'"),
        ("[[feed]]\nname = 'x'\n", "key 'source' is required"),
        ("[[feed]]\nsource = 'a'\nexpire_days = 'ten'\n", "key 'expire_days' must be an integer, got 'ten'"),
        (
            "[[feed]]\nsource = 'a'\ndetection_function = 'Like'\n",
            "#1: key 'detection_function' must be one of Equals",
        ),
        ("[tuning]\nworkers = 0\n[[feed]]\nsource = 'a'\n", "number of workers must be between 1 and 256"),
        (
            "[[feed]]\nsource = 'a'\n[[feed]]\nsource = 'b/a'\n",
            "two feeds share the alert definition name 'a'",
        ),
        ("[auth]\nversion = 'v3'\n[[feed]]\nsource = 'a'\n", "[auth]: key 'version' must be 'v1' or 'v2'"),
        ("[[feed]]\nsource = 'a'\ntitle = '" + "t" * 121 + "'\n", "key 'title' is 121 characters long"),
        ("[extra]\nx = 1\n", "unknown table or key 'extra'"),
        ("[[feed]\nsource = 'a'\n", "is not valid TOML"),
    ],
)
def test_config_errors_name_the_file_the_key_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_run_settings(CliOptions(config=path), ENV, now=NOW)
    assert message in str(caught.value)
    assert str(caught.value).count("\n") == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TI_CLIENT_SECRET": "x", "TI_AUTH_URL": "https://a/t"}, "no client id"),
        ({"TI_CLIENT_ID": "x", "TI_AUTH_URL": "https://a/t"}, "no client secret"),
        ({"TI_CLIENT_ID": "x", "TI_CLIENT_SECRET": "x"}, "no token URL"),
    ],
)
def test_missing_credentials_say_which_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_run_settings(CliOptions(feeds=("a.txt",)), env)


def test_usage_conflicts(tmp_path: Path) -> None:
    path = write(tmp_path, "[[feed]]\nsource = 'a'\n")
    with pytest.raises(ConfigError, match="not both"):
        load_run_settings(CliOptions(feeds=("b",), config=path), ENV)
    with pytest.raises(ConfigError, match="apply to FEED arguments"):
        load_run_settings(CliOptions(config=path, feed_options={"severity": "High"}), ENV)
    with pytest.raises(ConfigError, match="names one feed"):
        load_run_settings(CliOptions(feeds=("a", "b"), feed_options={"name": "x"}), ENV)
    with pytest.raises(ConfigError, match="no feed to import"):
        load_run_settings(CliOptions(), ENV)
    with pytest.raises(ConfigError, match="does not exist"):
        load_run_settings(CliOptions(config=tmp_path / "missing.toml"), ENV)


def test_rates_and_default_names() -> None:
    assert parse_rate("600/min") == 600 and parse_rate("10/s") == 600 and parse_rate("36000/h") == 600
    assert parse_rate("90") == 90
    with pytest.raises(ConfigError):
        parse_rate("fast")
    assert default_definition_name("-") == "stdin"
    assert default_definition_name("https://h.example/path/iocs.csv?x=1") == "iocs.csv"
    assert default_definition_name("/var/feeds/a.txt.gz") == "a.txt.gz"


def test_each_target_has_its_own_default_api_url() -> None:
    feeds = ("data/bad-hashes.csv",)
    ti = load_run_settings(CliOptions(feeds=feeds), ENV, now=NOW)
    mde = load_run_settings(CliOptions(feeds=feeds, target="mde"), ENV, now=NOW)
    assert ti.connection.api_url == "https://ti.securitycenter.windows.com/V1.0/"
    assert mde.connection.api_url == "https://api.securitycenter.microsoft.com/api/"
    explicit = load_run_settings(
        CliOptions(feeds=feeds, target="mde"), {**ENV, "TI_API_URL": "http://127.0.0.1:9/api/"}, now=NOW
    )
    assert explicit.connection.api_url == "http://127.0.0.1:9/api/"


def test_mde_fields_of_a_feed_come_from_the_config_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[target]\nname = "mde"\n\n[[feed]]\nsource = "a.csv"\naction = "Block"\n'
        'generate_alert = false\nrbac_groups = ["Servers", "Laptops"]\napplication = "ti-importer"\n',
    )
    (feed,) = load_run_settings(CliOptions(config=path), ENV, now=NOW).feeds
    spec = feed.definition
    assert (spec[ACTION], spec[GENERATE_ALERT], spec[APPLICATION]) == ("Block", False, "ti-importer")
    assert spec[RBAC_GROUPS] == ("Servers", "Laptops")
    bad = write(tmp_path, '[target]\nname = "mde"\n[[feed]]\nsource = "a.csv"\naction = "Nuke"\n')
    with pytest.raises(ConfigError, match=r"\[\[feed\]\] #1: key 'action' must be one of Alert, Warn, Block"):
        load_run_settings(CliOptions(config=bad), ENV, now=NOW)


def test_an_option_of_another_target_is_refused_naming_the_key(tmp_path: Path) -> None:
    # Silently ignoring it would leave the user believing Block (or a category) was applied.
    mde_key = write(tmp_path, '[[feed]]\nsource = "a.csv"\naction = "Block"\n')
    with pytest.raises(ConfigError, match=r"#1: key 'action' applies to the mde target only .*is ti\)"):
        load_run_settings(CliOptions(config=mde_key), ENV, now=NOW)
    with pytest.raises(ConfigError, match=r"key 'category' applies to the ti target only"):
        load_run_settings(
            CliOptions(feeds=("a.csv",), target="mde", feed_options={"category": "Malware"}), ENV, now=NOW
        )


def test_the_batch_size_is_bounded_by_the_targets_largest_request() -> None:
    feeds = ("a.csv",)
    assert load_run_settings(CliOptions(feeds=feeds, batch_size=5000), ENV, now=NOW).tuning.batch_size == 5000
    with pytest.raises(ConfigError, match=r"between 1 and 500 \(the most one request to the mde target"):
        load_run_settings(CliOptions(feeds=feeds, target="mde", batch_size=501), ENV, now=NOW)
