"""The run locks work where ``fcntl`` does not exist (Windows): the lock tests, run again without it.

A child pytest session loads ``tests.no_fcntl``, which hides ``fcntl`` and stands in for
``msvcrt``; the host-lock and journal-lock tests then go through ``lockfile``'s msvcrt path,
against real processes (the child runs of those tests keep their own ``fcntl``: the locks are one
kernel lock either way).
"""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

LOCK_TESTS = [
    "tests/importer/test_host_lock.py",
    "tests/importer/test_journal.py::test_second_process_on_the_same_tenant_fails_clearly",
    "tests/importer/test_journal.py::test_lock_is_released_when_the_holder_is_killed",
]


def test_the_lock_tests_pass_without_fcntl() -> None:
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.no_fcntl", "-p", "no:cacheprovider",
         *LOCK_TESTS],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    report = child.stdout[-3000:] + child.stderr[-2000:]
    assert child.returncode == 0, report
    assert "7 passed" in child.stdout, report  # every lock test ran; none was skipped
