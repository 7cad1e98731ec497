"""The record model: ``Indicator.fast`` builds exactly what ``Indicator(...)`` builds, and
``Rejected`` and ``Expired`` share one implementation while staying types the pipeline tells apart."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.model import Detection, Expired, Indicator, Kind, Rejected

_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "description": st.none() | st.text(max_size=8),
        "labels": st.lists(st.text(max_size=5), max_size=3).map(tuple),
        "confidence": st.none() | st.integers(0, 100),
        "first_seen": st.none() | st.datetimes(timezones=st.just(UTC)),
        "expires": st.none() | st.datetimes(timezones=st.just(UTC)),
        "detection": st.sampled_from(Detection),
    },
)


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(Kind), value=st.text(max_size=10), origin=st.text(max_size=10), more=_FIELDS)
def test_fast_builds_what_the_dataclass_builds(
    kind: Kind, value: str, origin: str, more: dict[str, object]
) -> None:
    fast = Indicator.fast(kind, value, origin, **more)  # type: ignore[arg-type]
    slow = Indicator(kind, value, origin, **more)  # type: ignore[arg-type]
    assert type(fast) is Indicator
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert fast.to_json() == slow.to_json()
    assert [getattr(fast, f.name) for f in dataclasses.fields(Indicator)] == [
        getattr(slow, f.name) for f in dataclasses.fields(Indicator)
    ]


def test_fast_takes_the_dataclass_arguments_positionally_too() -> None:
    when = datetime(2024, 5, 7, tzinfo=UTC)
    every = (Kind.URL, "http://a.b/", "o:1", "d", ("x",), 5, when, when, Detection.STARTS_WITH)
    assert Indicator.fast(*every) == Indicator(*every)


def test_a_fast_indicator_is_frozen_and_pickles() -> None:
    built = Indicator.fast(Kind.MD5, "0" * 32, "o:1", labels=("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.value = "1" * 32  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(built)) == built
    assert dataclasses.replace(built, origin="o:2") == Indicator(Kind.MD5, "0" * 32, "o:2", labels=("a",))


def test_rejected_and_expired_are_distinct_types_with_one_shape() -> None:
    rejected, expired = Rejected("f:1", "raw", "why"), Expired("f:1", "raw", "why")
    assert not isinstance(expired, Rejected) and not isinstance(rejected, Expired)
    as_object: object = rejected  # the same fields do not make the two kinds of record equal
    assert as_object != expired
    assert rejected == Rejected(origin="f:1", raw="raw", reason="why")
    assert repr(rejected) == "Rejected(origin='f:1', raw='raw', reason='why')"
    assert repr(expired) == "Expired(origin='f:1', raw='raw', reason='why')"
    assert rejected.to_json() == expired.to_json() == {"origin": "f:1", "raw": "raw", "reason": "why"}
    for record in (rejected, expired):
        assert [f.name for f in dataclasses.fields(record)] == ["origin", "raw", "reason"]
        assert not hasattr(record, "__dict__")  # slotted, as before: no per-record dict
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.reason = "other"  # type: ignore[misc]
