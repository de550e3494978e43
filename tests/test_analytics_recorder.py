"""The recorder on its own: what the evaluation path records, with no I/O."""

from __future__ import annotations

import random

from aioflags import Config, Context
from aioflags._analytics._format import EventFormatter
from aioflags._analytics._recorder import Recorder
from aioflags._snapshot import FlagSnapshot
from aioflags._store import snapshot_from_data
from tests.analytics import flag

USER = Context.create("u1")
ORG = Context.create("o1", "org")


def recorder(**options: object) -> Recorder:
    return Recorder(Config("k", **options), random.Random(0), now_ms=lambda: 1000)  # type: ignore[arg-type]


def summary(rec: Recorder) -> dict:  # type: ignore[type-arg]
    batch = rec.take()
    assert batch is not None
    events = EventFormatter(Config("k")).events(batch)
    return events[-1]["features"]  # type: ignore[no-any-return]


def test_a_snapshot_that_is_not_ready_records_unknown_flags() -> None:
    rec = recorder()
    snapshot = FlagSnapshot(recorder=rec)
    assert snapshot.variation("f", USER, "d") == "d"
    assert snapshot.bool_variation_detail("f", USER, True).error_kind == (
        "CLIENT_NOT_READY"
    )
    assert snapshot.variation("f", None, "d") == "d"  # no context: no event
    assert summary(rec)["f"]["counters"] == [
        {"unknown": True, "value": "d", "count": 2}
    ]


def test_a_deleted_flag_counts_as_unknown() -> None:
    rec = recorder()
    snapshot = snapshot_from_data({"f": {"key": "f", "version": 2, "deleted": True}})
    snapshot.recording(rec).variation("f", USER, "d")
    assert summary(rec)["f"]["counters"] == [
        {"unknown": True, "value": "d", "count": 1}
    ]


def test_context_kinds_are_collected_whatever_the_order() -> None:
    rec = recorder()
    snapshot = snapshot_from_data(
        {"f": {**flag(), "key": "f", "version": 1}}
    ).recording(rec)
    for context in (USER, USER, ORG, USER, Context.create_multi(USER, ORG), ORG):
        snapshot.variation("f", context, False)
    features = summary(rec)
    assert features["f"]["contextKinds"] == ["org", "user"]
    assert features["f"]["counters"][0]["count"] == 6


def test_nothing_recorded_means_nothing_to_take() -> None:
    rec = recorder()
    assert rec.take() is None
    rec.identify(USER)
    batch = rec.take()
    assert batch is not None and batch.counters == [] and len(batch.records) == 1
    assert rec.take() is None
