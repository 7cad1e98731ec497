"""A MISP feed's changed event replaces what its earlier version produced, as a STIX id's new version does.

MISP re-publishes a changed event whole under its uuid (a new manifest timestamp): an attribute whose
value was corrected, or that lost its ``to_ids``, leaves the target on the next incremental run —
unless another event of the feed still lists the value. A feed folder on disk, the emulator's ``ti``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from importer.emulator import Emulator
from importer.report.counts import FeedReport
from tests.helpers import checked_run, held_values, table_settings

T0 = 1_700_000_000
A, B, C = ("a" * 64, "b" * 64, "c" * 64)


def write_event(root: Path, stamps: dict[str, int], uuid: str, timestamp: int, **values: bool) -> None:
    """The event ``uuid`` with one sha256 attribute per value (``to_ids`` as given), and the manifest."""
    attributes = [
        {"uuid": f"{uuid[:-4]}{k:04d}", "type": "sha256", "to_ids": to_ids, "value": value * 64}
        for k, (value, to_ids) in enumerate(values.items())
    ]
    event = {"Event": {"uuid": uuid, "info": "x", "timestamp": str(timestamp), "Attribute": attributes}}
    (root / f"{uuid}.json").write_text(json.dumps(event), encoding="utf-8")
    stamps[uuid] = timestamp
    manifest = {u: {"info": "x", "timestamp": str(t)} for u, t in stamps.items()}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


async def run(emu: Emulator, state: Path, source: str, **table: Any) -> FeedReport:
    settings = table_settings(emu, {"source": source, "name": "MISP", **table}, workers=2)
    (feed_report,) = (await checked_run(settings, state)).feeds
    assert feed_report.error is None and feed_report.delete_failed == 0
    return feed_report


async def held(emu: Emulator) -> set[str]:
    return await held_values(emu, "MISP")


async def test_a_changed_event_takes_off_what_it_no_longer_lists(emulator: Emulator, tmp_path: Path) -> None:
    root, state, stamps = tmp_path / "feed", tmp_path / "state.sqlite", {}
    root.mkdir()
    one, two = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    write_event(root, stamps, one, T0, a=True, b=True)
    write_event(root, stamps, two, T0 + 1, c=False)
    first = await run(emulator, state, str(root))
    assert first.imported == 2 and await held(emulator) == {A, B}

    # Event one: A corrected to C, B no longer for detection (event two lists nothing to detect).
    write_event(root, stamps, one, T0 + 10, c=True, b=False)
    second = await run(emulator, state, str(root))
    assert (second.imported, second.removed) == (1, 2) and await held(emulator) == {C}

    # Both events list A now: C, only event one's, goes.
    write_event(root, stamps, two, T0 + 20, a=True)
    write_event(root, stamps, one, T0 + 21, a=True)
    third = await run(emulator, state, str(root))
    assert (third.imported, third.removed) == (1, 1) and await held(emulator) == {A}
    # Event two drops A; event one (not in this pull) still lists it: it stays.
    write_event(root, stamps, two, T0 + 30, c=False)
    fourth = await run(emulator, state, str(root))
    assert (fourth.records_read, fourth.removed) == (1, 0) and await held(emulator) == {A}
