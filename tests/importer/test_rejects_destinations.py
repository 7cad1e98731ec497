"""The rejects file of several destinations, unit by unit: one writer, a view per destination naming
it in each line, one rename at the end; a line that cannot be written is said to every view; and
the retry source reading back only a destination's lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feeds.model import Indicator, Kind
from importer.errors import ConfigError
from importer.fields import COMMON
from importer.pipeline.rejects import RejectsWriter
from importer.sources.retry import not_sent, read_retry_groups, retry_census, retry_indicators
from importer.targets.registry import package
from tests.helpers import spec_for

ROWS = COMMON + package("ti").fields
SPEC = spec_for("feed A", title="T", description="D", severity="High", category="Malware")


def failed(n: int) -> Indicator:
    return Indicator(Kind.SHA256, f"{n:064x}", f"f.txt:{n}")


def test_views_name_their_destination_and_only_the_writer_makes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    path.write_text("last night's file\n")
    writer = RejectsWriter(path)
    contoso, fabrikam = writer.for_destination("contoso"), writer.for_destination("fabrikam")
    contoso.indicator("feed A", failed(1), "HTTP 507", failed=True, definition=SPEC)
    fabrikam.indicator("feed A", failed(2), "cap full", failed=True, definition=SPEC)
    fabrikam.indicator("feed A", failed(3), "no zone", failed=False, definition=SPEC)
    contoso.close()  # a destination ended: the file is not final until every one has
    fabrikam.close()
    assert path.read_text() == "last night's file\n"
    writer.close()
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    assert [(line["destination"], line["value"][-1], line["retryable"]) for line in lines] == [
        ("contoso", "1", True), ("fabrikam", "2", True), ("fabrikam", "3", False),
    ]  # fmt: skip
    assert (contoso.lines, fabrikam.lines) == (1, 2)
    assert not list(tmp_path.glob("rejects.jsonl?*"))

    assert retry_census(path) == {"contoso": 1, "fabrikam": 1}
    assert [group.count for group in read_retry_groups(path, ROWS, destination="fabrikam")] == [1]
    assert list(retry_indicators(path, "feed A", destination="fabrikam")) == [failed(2)]
    assert read_retry_groups(path, ROWS, destination="gone") == []
    assert not_sent(path, retry_census(path), {"contoso"}) == {"fabrikam": 1}


def test_a_run_without_destinations_writes_no_key_and_its_retry_takes_every_line(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    writer = RejectsWriter(path)
    writer.indicator("feed A", failed(1), "HTTP 507", failed=True, definition=SPEC)
    writer.close()
    (line,) = [json.loads(text) for text in path.read_text().splitlines()]
    assert "destination" not in line  # as it always was
    assert retry_census(path) == {None: 1}
    assert list(retry_indicators(path, "feed A", destination="anyone")) == [failed(1)]


class FullDisk:
    """An output (``report.outputs.OutputFile``) on a disk that is full: every write fails."""

    def __init__(self) -> None:
        self.discarded = self.committed = False

    def write(self, text: str) -> None:
        raise ConfigError("the rejects file r.jsonl cannot be written: no space left on device")

    def commit(self) -> None:
        self.committed = True

    def discard(self) -> None:
        self.discarded = True


def test_a_line_that_cannot_be_written_is_said_to_every_destination(tmp_path: Path) -> None:
    writer = RejectsWriter(tmp_path / "rejects.jsonl")
    disk = FullDisk()
    writer._file._out.discard()  # type: ignore[union-attr]  # the real temporary file: not needed
    writer._file._out = disk  # type: ignore[union-attr]
    contoso, fabrikam = writer.for_destination("contoso"), writer.for_destination("fabrikam")
    with pytest.raises(ConfigError, match="no space left"):
        contoso.indicator("feed A", failed(1), "HTTP 507", failed=True, definition=SPEC)
    assert disk.discarded
    # The other destination's next line is not dropped unsaid: it hears the same error.
    with pytest.raises(ConfigError, match="no space left"):
        fabrikam.indicator("feed A", failed(2), "cap full", failed=True, definition=SPEC)
    writer.close()
    assert not disk.committed and not list(tmp_path.iterdir())  # no half file, no temporary one


def test_a_destination_key_that_is_not_a_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    path.write_text(json.dumps({"retryable": True, "bucket": "failed", "destination": 7}) + "\n")
    with pytest.raises(ConfigError, match="key 'destination' must be a destination's name"):
        retry_census(path)
