"""``ti-import emulator`` and Sentinel: the ``--sentinel-window-scale`` flag, and a banner naming the
demo workspace that a client can upload to and read back from as printed."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import aiohttp
import pytest

from importer.cli.emulator import add_parser, build_config
from importer.emulator import DEMO_CLIENT, DEMO_WORKSPACE
from tests.helpers.emulator_api import sentinel_query, sentinel_upload, stix_indicator


def test_the_flag_scales_the_sentinel_window() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    assert (
        build_config(parser.parse_args(["emulator", "--sentinel-window-scale", "0.01"])).sentinel_window_scale
        == 0.01
    )
    assert build_config(parser.parse_args(["emulator"])).sentinel_window_scale == 1.0
    with pytest.raises(SystemExit):
        parser.parse_args(["emulator", "--sentinel-window-scale", "0"])


async def _banner(stdout: asyncio.StreamReader) -> dict[str, str]:
    """The banner's lines as label -> value, up to the demo workspace's name (the last line)."""
    lines: dict[str, str] = {}
    while "demo workspace name" not in lines:
        line = (await asyncio.wait_for(stdout.readline(), 15)).decode()
        assert line, f"the banner ended early: {lines}"
        label, _, value = line.strip().partition(": ")
        lines[label.strip()] = value.strip()
    return lines


async def test_the_banner_names_the_demo_workspace_and_it_serves_as_printed(
    session: aiohttp.ClientSession,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "importer", "emulator", "--port", "0", "--sentinel-window-scale", "0.01",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = await _banner(process.stdout)
        assert banner["demo workspace id"] == DEMO_WORKSPACE.workspace_id
        assert banner["demo subscription"] == DEMO_WORKSPACE.subscription_id
        assert banner["demo resource group"] == DEMO_WORKSPACE.resource_group
        assert banner["demo workspace name"] == DEMO_WORKSPACE.name
        base = banner["Sentinel API + ARM"]
        form = {
            "grant_type": "client_credentials",
            "client_id": DEMO_CLIENT.client_id,
            "client_secret": DEMO_CLIENT.client_secret,
            "scope": "https://management.azure.com/.default",
        }
        async with session.post(banner["token endpoint (v2)"], data=form) as response:
            token = (await response.json())["access_token"]
        upload = (
            f"{base}workspaces/{banner['demo workspace id']}/threat-intelligence-stix-objects:upload"
            "?api-version=2024-02-01-preview"
        )
        assert (await sentinel_upload(session, upload, token, [stix_indicator(1)]))[0] == 200
        query = (
            f"{base}subscriptions/{banner['demo subscription']}"
            f"/resourceGroups/{banner['demo resource group']}"
            f"/providers/Microsoft.OperationalInsights/workspaces/{banner['demo workspace name']}"
            "/providers/Microsoft.SecurityInsights/threatIntelligence/main/queryIndicators?api-version=2024-03-01"
        )
        status, body = await sentinel_query(session, query, token, {})
        assert status == 200 and len(body["value"]) == 1
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, errors = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0 and b"Traceback" not in errors, errors.decode()
