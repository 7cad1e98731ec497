"""The alert rules shipped in ``deploy/prometheus/`` and shown in the README name metrics the
metrics file really has, with the threshold the docs give (no YAML parser needed: the lines)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from importer.report.counts import FeedReport, RunReport
from importer.report.metrics import LAST_SUCCESS, render

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "ti-import.rules.yml"


def exprs(text: str) -> list[str]:
    return re.findall(r"^\s*expr:\s*(.+?)\s*$", text, flags=re.MULTILINE)


def test_every_rule_names_a_metric_the_file_has() -> None:
    part = RunReport("mde", "bulk", feeds=[FeedReport("Hashes", "h.txt", records_read=1, imported=1)])
    part.finished_at = 1_800_000_000.0
    names = {
        sample.name
        for family in text_string_to_metric_families(render(part, last_success=1_800_000_000.0))
        for sample in family.samples
    }
    found = exprs(RULES.read_text())
    assert found, "no rule in the file"
    for expr in found:
        used = set(re.findall(r"\bti_import_[a-z_]+", expr))
        assert used and used <= names, expr
    assert f"time() - {LAST_SUCCESS} > 26 * 3600" in found


def test_the_readme_shows_the_same_rule() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"expr: time() - {LAST_SUCCESS} > 26 * 3600" in readme
    assert "deploy/prometheus/ti-import.rules.yml" in readme
