"""``ti-import emulator``: run the emulated token endpoint, TI, MDE and Sentinel APIs in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from typing import TYPE_CHECKING, Any

from importer.checks import positive_int_flag
from importer.emulator import DEMO_CLIENT, DEMO_WORKSPACE, EmulatorConfig, Faults
from importer.transport.urls import is_loopback

if TYPE_CHECKING:
    from importer.emulator import Emulator

__all__ = ["add_parser", "build_config", "run"]

# (flag suffix, Faults field, type, help)
_FAULT_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("latency-ms", "latency_ms", float,
     "every answer leaves N milliseconds after its request arrived (processing counts towards it)"),
    ("jitter-ms", "jitter_ms", float, "extra random delay, uniform in 0..N milliseconds"),
    ("error-rate", "error_rate", float, "probability (0..1) of answering 500 or 503 without applying"),
    ("throttle-per-minute", "throttle_per_minute", int,
     "more than N requests in a sliding minute are answered 429 with Retry-After (seconds)"),
    ("reset-rate", "reset_rate", float,
     "probability of closing the connection BEFORE the request is applied"),
    ("lost-after-write-rate", "lost_after_write_rate", float,
     "probability that a write is applied and THEN the connection is closed without an answer"),
    ("seed", "seed", int, "seed of the fault RNG (runs are reproducible)"),
)


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _kind(field: str, default_type: Any) -> Any:
    if field.endswith("_rate"):
        return _rate
    if field in ("latency_ms", "jitter_ms"):
        return _non_negative
    if field == "throttle_per_minute":
        return positive_int_flag
    return default_type


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="run the emulated Azure AD token endpoint, TI, MDE and Sentinel APIs in the foreground",
        description="Serve the emulated services until SIGINT/SIGTERM. The first stdout line is "
        "'ti-import emulator listening on http://HOST:PORT'. State is in memory only.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080,
                        help="port to bind; 0 picks a free one (default 8080)")
    api = parser.add_argument_group("API faults (TI and MDE APIs)")
    token = parser.add_argument_group("token endpoint faults")
    for suffix, field, kind, text in _FAULT_FLAGS:
        metavar = "P" if field.endswith("_rate") else "MS" if field.endswith("_ms") else "N"
        api.add_argument(f"--{suffix}", dest=f"api_{field}", type=_kind(field, kind), default=None,
                         metavar=metavar, help=text)
        token.add_argument(f"--token-{suffix}", dest=f"token_{field}", type=_kind(field, kind), default=None,
                           metavar=metavar, help=f"the same, at the token endpoint: {text}")
    token.add_argument("--token-lifetime", type=positive_int_flag, default=None, metavar="S",
                       help="lifetime of issued tokens in seconds (default 3600)")
    limits = parser.add_argument_group("paging, quotas and MDE limits")
    limits.add_argument("--page-size", type=positive_int_flag, default=1000,
                        help="TI: entities per page before @odata.nextLink (default 1000)")
    limits.add_argument("--max-alert-definitions", type=positive_int_flag, default=None,
                        help="TI quota on alert definitions per tenant (507 beyond; default none)")
    limits.add_argument("--max-iocs", type=positive_int_flag, default=None,
                        help="TI quota on IOCs per tenant (507 beyond; default none)")
    limits.add_argument("--max-non-equals-iocs", type=positive_int_flag, default=None,
                        help="TI quota on IOCs whose DetectionFunction is not Equals (507; default none)")
    limits.add_argument("--mde-import-per-minute", type=positive_int_flag, default=30,
                        help="MDE: import and BatchDelete calls per minute (default 30)")
    limits.add_argument("--mde-batch-delete-per-hour", type=positive_int_flag, default=1500,
                        help="MDE: BatchDelete calls per hour, on top of the minute's limit (default 1500)")
    limits.add_argument("--mde-calls-per-minute", type=positive_int_flag, default=100,
                        help="MDE: other calls per minute (default 100)")
    limits.add_argument("--mde-calls-per-hour", type=positive_int_flag, default=1500,
                        help="MDE: other calls per hour (default 1500)")
    limits.add_argument("--mde-tenant-cap", type=positive_int_flag, default=15000,
                        help="MDE: indicators per tenant (default 15000)")
    limits.add_argument("--mde-window-scale", type=_positive_float, default=1.0,
                        help="MDE: length of every rate window (minute and hour) relative to real "
                        "time (0.01: a minute lasts 0.6 s)")
    limits.add_argument("--sentinel-window-scale", type=_positive_float, default=1.0,
                        help="Sentinel: length of the upload API's minute window (100 requests per client "
                        "app) relative to real time (0.01: a minute lasts 0.6 s)")
    parser.set_defaults(handler=run)


def _faults(args: argparse.Namespace, prefix: str) -> Faults:
    given = {field: getattr(args, f"{prefix}_{field}") for _, field, _, _ in _FAULT_FLAGS}
    return Faults(**{k: v for k, v in given.items() if v is not None})


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """The configuration the flags describe."""
    token_faults = _faults(args, "token")
    if args.token_lifetime is not None:
        token_faults = Faults(**{**token_faults.__dict__, "token_lifetime": args.token_lifetime})
    return EmulatorConfig(
        page_size=args.page_size,
        max_alert_definitions=args.max_alert_definitions,
        max_iocs=args.max_iocs,
        max_non_equals_iocs=args.max_non_equals_iocs,
        mde_import_per_minute=args.mde_import_per_minute,
        mde_batch_delete_per_hour=args.mde_batch_delete_per_hour,
        mde_calls_per_minute=args.mde_calls_per_minute,
        mde_calls_per_hour=args.mde_calls_per_hour,
        mde_tenant_cap=args.mde_tenant_cap,
        mde_window_scale=args.mde_window_scale,
        sentinel_window_scale=args.sentinel_window_scale,
        api_faults=_faults(args, "api"),
        token_faults=token_faults,
    )


async def _serve(config: EmulatorConfig, host: str, port: int) -> None:
    from importer.emulator import running_emulator  # noqa: PLC0415 -- aiohttp.web only when serving
    from importer.emulator.cert import demo_certificate_file  # noqa: PLC0415 -- cryptography likewise

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # The certificate demo app: a new self-signed certificate each start, its PEM file removed at the end.
    with demo_certificate_file(DEMO_CLIENT.tenant) as (cert_app, pem_path):
        config = dataclasses.replace(config, clients=(*config.clients, cert_app))
        async with running_emulator(config, host=host, port=port) as emu:
            _banner(emu, cert_app.client_id, str(pem_path))
            await stop.wait()


def _banner(emu: Emulator, cert_client_id: str, pem_path: str) -> None:
    """What the emulator serves and the demo credentials, first line 'ti-import emulator listening on URL'."""
    print(f"ti-import emulator listening on {emu.base_url}", flush=True)
    print(f"  token endpoint (v1): {emu.auth_url(1)}")
    print(f"  token endpoint (v2): {emu.auth_url(2)}")
    print(f"  TI API:              {emu.ti_url}")
    print(f"  MDE API:             {emu.mde_url}")
    print(f"  Sentinel API + ARM:  {emu.sentinel_url}")
    print(f"  inspection:          {emu.base_url}/_emulator/state  (POST {emu.base_url}/_emulator/reset)")
    print(f"  demo client id:      {DEMO_CLIENT.client_id}")
    print(f"  demo client secret:  {DEMO_CLIENT.client_secret}  (demo only, not a real secret)")
    print(f"  demo cert client id: {cert_client_id}")
    print(f"  demo cert PEM file:  {pem_path}  (TI_CLIENT_CERT; removed when the emulator stops)")
    print(f"  demo tenant:         {DEMO_CLIENT.tenant}")
    print(f"  demo workspace id:   {DEMO_WORKSPACE.workspace_id}")
    print(f"  demo subscription:   {DEMO_WORKSPACE.subscription_id}")
    print(f"  demo resource group: {DEMO_WORKSPACE.resource_group}")
    print(f"  demo workspace name: {DEMO_WORKSPACE.name}", flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
    except ValueError as error:
        print(f"ti-import emulator: {error}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        # By design the inspection endpoints take no credentials (tests and demos need them bare):
        # on an address other machines reach, anyone there can read and reset the state.
        print(f"ti-import emulator: warning: listening on {args.host or 'every address'}, not loopback: "
              "its /_emulator/* endpoints have no authentication, so anyone who can reach it can read "
              "and reset its state", file=sys.stderr, flush=True)  # fmt: skip
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as error:
        print(f"ti-import emulator: cannot listen on {args.host}:{args.port}: {error.strerror or error}",
              file=sys.stderr)
        return 2
    return 0
