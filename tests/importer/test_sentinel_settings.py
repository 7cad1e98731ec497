"""The sentinel target's own settings, read by the generic target options: the workspace from a flag,
the environment or ``[target]``; the source system; the ARM read-back; refusals in one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.cli import build_parser
from importer.cli.run import _cli_options
from importer.errors import ConfigError
from importer.settings import CliOptions, load_run_settings
from importer.state.store import tenant_key

WORKSPACE = "7d3c9a52-4b1e-4f0a-9c62-5e8b1d2a4f10"
OURS = f'name = "sentinel"\nworkspace_id = "{WORKSPACE}"\n'
ENV = {"TI_CLIENT_ID": "app", "TI_CLIENT_SECRET": "s", "TI_AUTH_URL": "https://login.example/t/oauth2/token"}


def config(tmp_path: Path, target: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f'[target]\n{target}\n[[feed]]\nsource = "a.txt"\n')
    return path


def test_the_workspace_comes_from_the_flag_the_environment_or_the_config_file(tmp_path: Path) -> None:
    args = build_parser().parse_args(["run", "a.txt", "--target", "sentinel", "--workspace-id", WORKSPACE])
    flagged = load_run_settings(_cli_options(args), ENV)
    assert flagged.connection.option("workspace_id") == WORKSPACE
    assert flagged.connection.api_url == "https://api.ti.sentinel.azure.com/"
    assert flagged.connection.option("source_system") == "ti-importer"  # the default
    assert flagged.tuning.batch_size == 100  # the target's most, not the general default of 500
    from_env = load_run_settings(
        CliOptions(feeds=("a.txt",), target="sentinel"), {**ENV, "TI_WORKSPACE_ID": WORKSPACE}
    )
    assert from_env.connection.option("workspace_id") == WORKSPACE
    path = config(
        tmp_path, f'name = "sentinel"\nworkspace_id = "{WORKSPACE.upper()}"\nsource_system = "soc-feeds"'
    )
    from_file = load_run_settings(CliOptions(config=path), ENV)
    assert from_file.connection.option("workspace_id") == WORKSPACE  # one spelling of a GUID
    assert from_file.connection.option("source_system") == "soc-feeds"


def test_a_missing_workspace_is_one_sentence_naming_every_way_to_give_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(CliOptions(feeds=("a.txt",), target="sentinel"), ENV)
    assert str(caught.value) == (
        "the sentinel target needs a workspace id (the Log Analytics workspace's GUID): give --workspace-id, "
        "set TI_WORKSPACE_ID or set workspace_id in the config file's [target] table"
    )


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ('name = "sentinel"\nworkspace_id = "not-a-guid"', "key 'workspace_id' must be the workspace's GUID"),
        (OURS + 'source_system = "Microsoft Sentinel"',
         "key 'source_system' must not be 'Microsoft Sentinel'"),
        (OURS + "workspace_name = 7", "key 'workspace_name' must be"),
        (f'name = "ti"\nworkspace_id = "{WORKSPACE}"',
         "key 'workspace_id' applies to the sentinel target only"),
        (OURS + 'arm_url = "http://arm.example/"', "key 'arm_url'"),
    ],
)  # fmt: skip
def test_a_bad_or_foreign_option_in_the_config_file_is_refused(
    tmp_path: Path, lines: str, error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        load_run_settings(CliOptions(config=config(tmp_path, lines)), ENV)


def test_a_sentinel_flag_with_another_target_is_refused_and_its_variable_ignored() -> None:
    with pytest.raises(ConfigError, match="--workspace-id applies to the sentinel target only, not ti"):
        load_run_settings(CliOptions(feeds=("a.txt",), target_options={"workspace_id": WORKSPACE}), ENV)
    ti = load_run_settings(CliOptions(feeds=("a.txt",)), {**ENV, "TI_WORKSPACE_ID": WORKSPACE})
    assert ti.connection.target_options == () and ti.connection.tenant_url == ti.connection.api_url


def test_the_workspace_and_source_narrow_the_tenant_of_the_journal_and_the_run_lock() -> None:
    def tenant(env: dict[str, str]) -> str:
        connection = load_run_settings(
            CliOptions(feeds=("a.txt",), target="sentinel"), {**ENV, **env}
        ).connection
        return tenant_key(connection.tenant_url, connection.client_id)

    one = tenant({"TI_WORKSPACE_ID": WORKSPACE})
    other = tenant({"TI_WORKSPACE_ID": "00000000-0000-4000-8000-000000000000"})
    assert one != other and WORKSPACE in one and "ti-importer" in one


def test_the_arm_url_is_checked_as_the_api_url_is(tmp_path: Path) -> None:
    lines = f'name = "sentinel"\nworkspace_id = "{WORKSPACE}"\narm_url = "http://127.0.0.1:8080/"'
    settings = load_run_settings(CliOptions(config=config(tmp_path, lines)), ENV)
    assert settings.connection.option("arm_url") == "http://127.0.0.1:8080/"  # loopback: plain http allowed
