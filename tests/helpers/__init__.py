"""Helpers the test modules share (no test module imports another): the one injected test clock,
polling waits, definitions and settings for the emulator, feeds written to disk, the emulator's API
by hand, miniatures of the pipeline, the importer and emulator run as child processes, and
loopback stand-ins for the network (a forward proxy, TLS with a private CA, recording servers).

Fixtures live in the ``conftest.py`` files and build on these. One module per subject; every
name is importable from ``tests.helpers``.
"""

from __future__ import annotations

from tests.helpers.cli import run_cli, use_emulator
from tests.helpers.clock import (
    FakeTime,
    settle,
    wait_until,
    wait_until_sync,
)
from tests.helpers.data import (
    as_schema,
    connection_settings,
    feed_spec,
    md5,
    md5_items,
    md5_keys,
    schema_version,
    sha1,
    sha1s,
    sha256,
    spec_for,
    write_feed,
    write_list,
)
from tests.helpers.emulator_api import (
    DEFINITION,
    auth,
    create_definition,
    get_json,
    get_token,
    mde_delete,
    mde_held,
    post_json,
    ti_held,
    ti_ioc,
)
from tests.helpers.network import (
    ForwardProxy,
    RecordingServer,
    forward_proxy,
    https_emulator,
    recording_server,
)
from tests.helpers.processes import (
    FAST_EMULATOR,
    FAST_IMPORTER,
    FEED_ARGS,
    ROOT,
    EmulatorProcess,
    importer_env,
    kill_when,
    reached_before_exit,
    start_emulator,
    start_importer,
    stop_process,
)
from tests.helpers.retry import (
    FAILED,
    SCHEDULED,
    UNSCHEDULED,
    failed_state,
    fake_retrier,
)
from tests.helpers.runs import (
    checked_run,
    held_values,
    journaled_run,
    journaled_settings,
    send_all,
    table_settings,
    tenant,
    ti_target,
)

__all__ = [
    "DEFINITION",
    "FAILED",
    "FAST_EMULATOR",
    "FAST_IMPORTER",
    "FEED_ARGS",
    "ROOT",
    "SCHEDULED",
    "UNSCHEDULED",
    "EmulatorProcess",
    "FakeTime",
    "ForwardProxy",
    "RecordingServer",
    "as_schema",
    "auth",
    "checked_run",
    "connection_settings",
    "create_definition",
    "failed_state",
    "fake_retrier",
    "feed_spec",
    "forward_proxy",
    "get_json",
    "get_token",
    "held_values",
    "https_emulator",
    "importer_env",
    "journaled_run",
    "journaled_settings",
    "kill_when",
    "md5",
    "md5_items",
    "md5_keys",
    "mde_delete",
    "mde_held",
    "post_json",
    "reached_before_exit",
    "recording_server",
    "run_cli",
    "schema_version",
    "send_all",
    "settle",
    "sha1",
    "sha1s",
    "sha256",
    "spec_for",
    "start_emulator",
    "start_importer",
    "stop_process",
    "table_settings",
    "tenant",
    "ti_held",
    "ti_ioc",
    "ti_target",
    "use_emulator",
    "wait_until",
    "wait_until_sync",
    "write_feed",
    "write_list",
]
