"""When a held indicator is sent again (``pipeline.freshness``), and the journal's side of it: stamps
kept per indicator, rows from before stamps, and values shared between mde definitions."""

from __future__ import annotations

from pathlib import Path

from feeds.model import Kind
from importer.model import Held, Stamp
from importer.pipeline.freshness import Freshness, Verdict
from importer.state.journal import Journal
from importer.state.schema import SCHEMA_VERSION
from tests.helpers import as_schema, md5, md5_items, md5_keys, schema_version

DAY = 86_400
TODAY = 1_800_000_000  # "now + N days" is what a rolling expiry asks for today


def test_metadata_or_a_fixed_expiry_that_changed_is_sent_again() -> None:
    rule = Freshness()
    held = Held("1", Stamp(5, 100))
    assert rule.judge(held, Stamp(5, 100), own_expiry=True) == Verdict(send=False)
    assert rule.judge(held, Stamp(6, 100), own_expiry=True).send  # metadata
    assert rule.judge(held, Stamp(5, 101), own_expiry=True).send  # the feed moved its expiry
    assert rule.judge(held, Stamp(5, None), own_expiry=False).send  # ...or dropped it
    assert not rule.judge(Held("1", Stamp(5, None)), Stamp(5, None), own_expiry=False).send


def test_a_rolling_expiry_is_refreshed_once_less_than_the_share_remains() -> None:
    rule = Freshness(rolling_days=90, refresh_share=0.5)
    wanted = Stamp(5, TODAY + 90 * DAY)
    assert not rule.judge(Held("1", Stamp(5, TODAY + 46 * DAY)), wanted, own_expiry=False).send
    assert rule.judge(Held("1", Stamp(5, TODAY + 44 * DAY)), wanted, own_expiry=False).send
    # An indicator's own expiry (a STIX valid_until) is fixed: only a change sends it again.
    assert not rule.judge(
        Held("1", Stamp(5, TODAY + 44 * DAY)), Stamp(5, TODAY + 44 * DAY), own_expiry=True
    ).send
    eager = Freshness(rolling_days=90, refresh_share=0.9)
    assert eager.judge(Held("1", Stamp(5, TODAY + 80 * DAY)), wanted, own_expiry=False).send


def test_a_row_from_before_stamps_is_adopted_with_the_expiry_it_was_given() -> None:
    """No stamp: the journal row predates them. It is taken to hold today's metadata and the expiry
    set when it was first recorded — recorded as such without a request, unless that is due."""
    rule = Freshness(rolling_days=90)
    wanted = Stamp(5, TODAY + 90 * DAY)
    recent = Held("1", None, since=TODAY - 10 * DAY)
    assert rule.judge(recent, wanted, own_expiry=False) == Verdict(False, Stamp(5, TODAY + 80 * DAY))
    old = Held("1", None, since=TODAY - 60 * DAY)  # 30 of 90 days left: it would lapse
    assert rule.judge(old, wanted, own_expiry=False).send
    assert Freshness().judge(Held("1", None), Stamp(5, None), own_expiry=False) == Verdict(
        False, Stamp(5, None)
    )


def test_the_journal_keeps_what_was_sent_and_answers_with_it(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "s.sqlite", target="ti", tenant="t", merge_every=3) as journal:
        run = journal.begin_run()
        journal.record([("A", [(Kind.MD5, md5(n), f"r{n}", Stamp(n, 1000 + n)) for n in range(5)])], run)
        held = journal.held("A", md5_keys(0, 6))  # some merged into the table, some still in the log
        assert {key: (h.remote_id, h.stamp) for key, h in held.items()} == {
            (Kind.MD5, md5(n)): (f"r{n}", Stamp(n, 1000 + n)) for n in range(5)
        }
        journal.record([("A", [(Kind.MD5, md5(1), "r1", Stamp(9, None))])], run)  # updated
        assert journal.held("A", md5_keys(1, 2))[Kind.MD5, md5(1)].stamp == Stamp(9, None)


def test_schema_2_rows_keep_their_ids_and_have_no_stamp(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Journal.open(path, target="ti", tenant="t", clock=lambda: 1_000.0) as journal:
        journal.record_imported("A", md5_items(0, 3), journal.begin_run())
    added = {"indicators": ("meta", "expires", "owned"), "log": ("meta", "expires", "owned"),
             "reconcile_stage": ("meta", "expires")}  # fmt: skip
    as_schema(path, 2, *(f"ALTER TABLE {table} DROP COLUMN {c}" for table, cs in added.items() for c in cs))
    with Journal.open(path, target="ti", tenant="t") as journal:
        held = journal.held("A", md5_keys(0, 3))
    assert {h.remote_id for h in held.values()} == {"r0", "r1", "r2"}
    assert {(h.stamp, h.since) for h in held.values()} == {(None, 1000)}
    assert schema_version(path) == SCHEMA_VERSION


def test_unique_values_have_one_owner_the_last_to_import_them(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "s.sqlite", target="mde", tenant="t", unique_values=True) as journal:
        run = journal.begin_run()
        stamp = Stamp(1, None)
        journal.record([("A", [(Kind.MD5, md5(n), f"r{n}", stamp) for n in range(4)])], run)
        journal.record([("B", [(Kind.MD5, md5(n), f"r{n}", stamp) for n in range(2, 6)])], run)
        # B imported 2 and 3 last: it owns them (mde titled them B); A still owns 0 and 1.
        from_a = journal.held("A", md5_keys(0, 6))
        assert {key[1]: h.elsewhere for key, h in from_a.items()} == {
            md5(0): False, md5(1): False, md5(2): True, md5(3): True, md5(4): True, md5(5): True
        }  # fmt: skip
        assert journal.elsewhere("B", md5_keys(0, 6)) == set(md5_keys(0, 4))  # A lists 0..3
        # B stops listing 2 and 3 and forgets them: A's rows own nobody's value now, so A is
        # told it does not hold them (and sends them again under its own title).
        journal.forget_keys("B", md5_keys(2, 4))
        assert set(journal.held("A", md5_keys(0, 4))) == set(md5_keys(0, 2))
        journal.mark_shared("B", [(Kind.MD5, md5(0), "r0")], run)  # B lists 0, owned by A
        assert journal.held("B", md5_keys(0, 1))[Kind.MD5, md5(0)].elsewhere
