"""The journal's count of permanent revocations per value (schema 6): what ``sentinel`` derives a
returning value's new id from."""

from __future__ import annotations

from pathlib import Path

from feeds.model import Kind
from importer.state.journal import Journal
from importer.state.schema import SCHEMA_VERSION
from tests.helpers import as_schema, schema_version

A, B, C = (Kind.SHA256, "a" * 64), (Kind.DOMAIN, "evil.example"), (Kind.IPV4, "203.0.113.9")


def test_each_confirmed_revocation_counts_per_value_and_tenant(state: Path) -> None:
    with Journal.open(state, target="sentinel", tenant="workspace-1") as journal:
        assert journal.revocations([A, B, C]) == {}
        journal.note_revoked([A, B])
        journal.note_revoked([A])
        assert journal.revocations([A, B, C]) == {A: 2, B: 1}
        assert journal.revocations([]) == {}
    with Journal.open(state, target="sentinel", tenant="workspace-2") as journal:
        assert journal.revocations([A, B]) == {}  # another workspace: its own values
    with Journal.open(state, target="sentinel", tenant="workspace-1") as journal:
        assert journal.revocations([A, B, C]) == {A: 2, B: 1}  # kept between runs


def test_many_keys_are_looked_up_in_chunks(state: Path) -> None:
    keys = [(Kind.SHA256, f"{n:064x}") for n in range(1500)]
    with Journal.open(state, target="sentinel", tenant="w") as journal:
        journal.note_revoked(keys[::3])
        assert journal.revocations(keys) == dict.fromkeys(keys[::3], 1)


def test_a_schema_5_journal_gains_the_table(state: Path) -> None:
    with Journal.open(state, target="sentinel", tenant="w"):
        pass
    as_schema(state, 5, "DROP TABLE revocations")
    with Journal.open(state, target="sentinel", tenant="w") as journal:
        assert journal.revocations([A]) == {}
        journal.note_revoked([A])
        assert journal.revocations([A]) == {A: 1}
    assert schema_version(state) == SCHEMA_VERSION
