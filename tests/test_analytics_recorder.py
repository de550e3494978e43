"""The recorder on its own: what the evaluation path records, with no I/O."""

from __future__ import annotations

import copy
import random

import httpx
import pytest

from aioflags import Config, Context, DataSystem
from aioflags._analytics._diagnostics import Diagnostics
from aioflags._analytics._processor import EventProcessor, _server_time
from aioflags._analytics._recorder import Recorder
from aioflags._client._evaluator import Evaluator
from aioflags._datasystem._payloads import fdv1_full
from aioflags._datasystem._store import Store, snapshot_from_data
from aioflags._evaluation._codegen import Code
from aioflags._evaluation._model import CompiledFlag, compile_flag
from aioflags._evaluation._results import Reason, Result
from aioflags._evaluation._snapshot import FlagSnapshot
from aioflags.testing import FakeClock
from tests.analytics import flag, formatter_for, recorder_for

USER = Context.create("u1")
ORG = Context.create("o1", "org")


def recorder(**options: object) -> Recorder:
    return recorder_for(Config("k", **options), now_ms=lambda: 1000)  # type: ignore[arg-type]


def summary(rec: Recorder) -> dict:  # type: ignore[type-arg]
    batch = rec.take()
    assert batch is not None
    events = formatter_for(Config("k")).events(batch)
    return events[-1]["features"]  # type: ignore[no-any-return]


def test_a_snapshot_that_is_not_ready_records_unknown_flags() -> None:
    rec = recorder()
    snapshot = FlagSnapshot().recording(rec)
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


def test_typed_methods_record_what_the_caller_got() -> None:
    rec = recorder()
    flags: dict[str, object] = {
        "n": {
            "key": "n",
            "version": 1,
            "on": True,
            "variations": [1, 2.5],
            "fallthrough": {"variation": 1},
            "trackEvents": True,
        },
        "i": {
            "key": "i",
            "version": 1,
            "on": True,
            "variations": [3],
            "fallthrough": {"variation": 0},
            "trackEvents": True,
        },
        "p": {
            **flag(prerequisites=[{"key": "i", "variation": 0}]),
            "key": "p",
            "version": 1,
        },
    }
    snapshot = snapshot_from_data(flags).recording(rec)
    assert snapshot.int_variation("n", USER, 0) == 2
    assert snapshot.float_variation_detail("i", USER, 0.0).value == 3.0
    assert snapshot.string_variation("p", USER, "s") == "s"  # wrong type, prereq
    assert snapshot.json_variation_detail("p", USER, None).value is True
    batch = rec.take()
    assert batch is not None
    events = formatter_for(Config("k")).events(batch)
    features = [(e["key"], e["value"]) for e in events if e["kind"] == "feature"]
    assert features == [("n", 2), ("i", 3.0), ("i", 3), ("i", 3)]


def test_identify_refreshes_a_known_context_and_respects_capacity() -> None:
    rec = recorder(context_keys_capacity=1)
    rec.identify(USER)
    rec.identify(USER)
    rec.identify(ORG)  # USER is forgotten to make room
    rec.custom("k", USER, None, None)
    batch = rec.take()
    assert batch is not None
    assert [r[0] for r in batch.records] == [
        3,
        3,
        3,
        4,
        2,
    ]  # identify x3, index, custom


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"date": "Sun, 06 Nov 1994 08:49:37 GMT"}, 784111777000),
        ({"date": "not a date"}, None),
        ({}, None),
    ],
    ids=["rfc1123", "unreadable", "absent"],
)
def test_server_time_comes_from_the_date_header(
    headers: dict[str, str], expected: int | None
) -> None:
    assert _server_time(httpx.Response(202, headers=headers)) == expected


@pytest.mark.parametrize(
    ("system", "disabled"),
    [(None, False), (DataSystem.streaming(), False), (DataSystem.polling(), True)],
    ids=["default", "streaming", "polling"],
)
def test_diagnostic_init_says_whether_streaming_is_off(
    system: DataSystem | None, disabled: bool
) -> None:
    event = Diagnostics(Config("sdk-key-123456", data_system=system), 0).init_event(5)
    assert event["configuration"]["streamingDisabled"] is disabled
    assert event["id"]["sdkKeySuffix"] == "123456"
    assert event["creationDate"] == 5


def test_identical_full_transfers_give_one_row_per_version_and_variation() -> None:
    """Issue 42: a full transfer makes new flag objects; the rows stay one per
    (version, variation), and one default row per version."""
    processor = EventProcessor(
        Config("k"),
        None,
        None,  # only its recorder is used
        FakeClock(),
        random.Random(0),
        now_ms=lambda: 1000,
    )
    data = {
        "flags": {
            "on": {**flag(), "key": "on", "version": 4},
            "off": {**flag(on=False, offVariation=None), "key": "off", "version": 2},
        },
        "segments": {},
    }
    store = Store()
    evaluator = Evaluator(store)
    evaluator.record(processor, True)
    for _ in range(2):  # the same data twice, as a stream reconnect would send it
        store.apply_now(fdv1_full(copy.deepcopy(data)))
        for method in ("variation", "variation_detail", "bool_variation"):
            getattr(evaluator.snapshot(), method)("on", USER, False)
            getattr(evaluator.snapshot(), method)("off", USER, False)
    features = summary(processor.recorder)
    assert features["on"]["counters"] == [
        {"variation": 0, "version": 4, "value": True, "count": 6}
    ]
    assert features["off"]["counters"] == [{"version": 2, "value": False, "count": 6}]


def _compiled(key: str, **fields: object) -> CompiledFlag:
    return compile_flag(key, {**flag(), "key": key, "version": 1, **fields})


def _loop_counts(
    rec: Recorder, flags: list[CompiledFlag], contexts: list[Context]
) -> None:
    """Count each flag's constant result for each context on the loop's ledger."""
    for context in contexts:
        for f in flags:
            assert f.constant is not None
            rec.loop.record(f, context, f.constant, False)


def test_the_loops_ledger_collects_every_kind_when_a_tracked_flag_comes_first() -> None:
    # A new context's first count is a tracked flag's (a full event): the
    # untracked flag counted in place after it still gets the new kind.
    rec = recorder()
    tracked, plain = _compiled("t", trackEvents=True), _compiled("p")
    _loop_counts(rec, [tracked, plain], [USER, ORG, Context.create("u2")])
    features = summary(rec)
    assert features["p"]["contextKinds"] == ["org", "user"]
    assert features["p"]["counters"][0]["count"] == 3
    assert features["t"]["contextKinds"] == ["org", "user"]


def test_the_loops_ledger_collects_the_kinds_of_multi_contexts() -> None:
    rec = recorder()
    device = Context.create("d1", "device")
    plain, other = _compiled("p"), _compiled("o")
    multi = Context.create_multi(ORG, device)
    _loop_counts(rec, [plain, other], [USER, multi, USER, Context.create("o2", "org")])
    features = summary(rec)
    for key in ("p", "o"):
        assert features[key]["contextKinds"] == ["device", "org", "user"]
        assert features[key]["counters"][0]["count"] == 4


def test_the_loops_ledger_starts_afresh_after_a_flush() -> None:
    # What it counted in place belongs to the window taken: the next
    # window's counters start from zero.
    rec = recorder()
    plain = _compiled("p")
    _loop_counts(rec, [plain, plain], [USER])
    assert summary(rec)["p"]["counters"][0]["count"] == 2
    _loop_counts(rec, [plain], [USER, ORG])
    features = summary(rec)
    assert features["p"]["counters"][0]["count"] == 2
    assert features["p"]["contextKinds"] == ["org", "user"]


def _flushed(rec: Recorder) -> dict:  # type: ignore[type-arg]
    """The summary's features of a flush, whose counters then serve again (as the processor does)."""
    batch = rec.take()
    assert batch is not None
    events = formatter_for(Config("k")).events(batch)
    rec.recycle(batch.own)
    return events[-1]["features"]  # type: ignore[no-any-return]


def test_the_loops_counters_serve_again_from_zero_after_a_flush() -> None:
    rec = recorder()
    kept, dropped = _compiled("k"), _compiled("d")
    _loop_counts(rec, [kept, dropped], [USER, Context.create("u2")])
    first = rec.loop.counters[kept]
    features = _flushed(rec)
    assert features["k"]["counters"][0]["count"] == 2
    assert features["d"]["counters"][0]["count"] == 2
    # The next window counts k alone, for an org, with another default:
    # the same counter, afresh.
    assert kept.constant is not None
    rec.loop.record(kept, ORG, kept.constant, "other")
    rec.loop.record(kept, ORG, kept.constant, "other")
    assert rec.loop.counters[kept] is first
    assert list(rec.loop.counters) == [kept]
    features = _flushed(rec)
    assert list(features) == ["k"]  # d: not counted in this window
    assert features["k"] == {
        "default": "other",
        "contextKinds": ["org"],
        "counters": [{"variation": 0, "version": 1, "value": True, "count": 2}],
    }
    # d was not counted again in the window taken: dropped, not kept.
    assert list(rec.loop.spare) == [kept]


def test_a_recycled_counter_counts_a_default_served_as_a_new_one() -> None:
    rec = recorder()
    f = _compiled("f")
    assert f.constant is not None
    rec.loop.record(f, USER, f.constant, False)
    _flushed(rec)
    # The same flag object, serving no variation (as a malformed flag does).
    rec.loop.record(
        f, USER, Result(None, None, Reason({"kind": "OFF"}), False, None), "dflt"
    )
    assert _flushed(rec)["f"] == {
        "default": "dflt",
        "contextKinds": ["user"],
        "counters": [{"version": 1, "value": "dflt", "count": 1}],
    }


def test_a_data_change_leaves_no_counter_of_the_flags_replaced() -> None:
    rec = recorder()
    old, other = _compiled("f"), _compiled("g")
    _loop_counts(rec, [old, other], [USER])
    _flushed(rec)
    # A full transfer: new objects for the same flags, f at a new version.
    new = _compiled("f", version=2)
    other_new = _compiled("g")
    _loop_counts(rec, [new, other_new], [USER])
    features = _flushed(rec)
    assert [c["version"] for c in features["f"]["counters"]] == [2]
    assert features["g"]["counters"][0]["count"] == 1
    assert set(rec.loop.spare) == {new, other_new}
    _loop_counts(rec, [new], [USER])
    _flushed(rec)
    assert set(rec.loop.spare) == {new}
    assert not rec.loop.counters


def test_a_window_taken_before_the_last_is_written_takes_new_counters() -> None:
    # The counters of a batch are the batch's until it hands them back: a
    # window that begins before then counts into new ones.
    rec = recorder()
    f = _compiled("f")
    _loop_counts(rec, [f], [USER])
    batch = rec.take()
    assert batch is not None
    taken = batch.own[f]
    _loop_counts(rec, [f], [USER, ORG])
    assert rec.loop.counters[f] is not taken
    assert taken.counts == [1, 0]
    rec.recycle(batch.own)
    assert _flushed(rec)["f"]["counters"][0]["count"] == 2


def test_a_counter_back_after_its_window_began_does_not_replace_the_window_s() -> None:
    # A window begun before the flush handed its counters back counts into
    # new ones: a counter handed back meanwhile is not taken for them.
    rec = recorder()
    f, g = _compiled("f"), _compiled("g")
    _loop_counts(rec, [f], [USER])
    batch = rec.take()
    assert batch is not None
    _loop_counts(rec, [f, f], [USER])
    rec.recycle(batch.own)
    _loop_counts(rec, [g, f], [ORG])  # f: not in place for an org yet
    features = _flushed(rec)
    assert features["f"]["counters"][0]["count"] == 3
    assert features["f"]["contextKinds"] == ["org", "user"]


def test_a_window_counted_in_place_from_its_first_evaluation_starts_there() -> None:
    now = [1_000]
    rec = recorder_for(Config("k"), now_ms=lambda: now[0])
    f = _compiled("f")
    _loop_counts(rec, [f], [USER])
    now[0] = 2_000
    _flushed(rec)
    now[0] = 5_000
    _loop_counts(rec, [f], [USER])  # its counter of the window before, in place
    assert rec.loop.flags_fast
    now[0] = 9_000
    batch = rec.take()
    assert batch is not None
    assert (batch.start_ms, batch.end_ms) == (5_000, 9_000)


def test_a_replaced_snapshot_is_freed_without_the_collector() -> None:
    # The counting matchers a snapshot's matcher makes (for the loop's
    # ledger and for the other threads') must not hold it in a cycle: a
    # replaced snapshot would wait for a full collection, or stay for good
    # once gc.freeze() has frozen it (Config(gc_freeze=True)).
    import gc
    import weakref

    rec = recorder()
    snapshot = snapshot_from_data(
        {
            "p": {
                **flag(),
                "key": "p",
                "version": 1,
                "targets": [{"values": ["x"], "variation": 1}],  # (code to run)
            },
            "f": {
                **flag(),
                "key": "f",
                "version": 1,
                "prerequisites": [{"key": "p", "variation": 0}],
            },
        }
    )
    matcher = snapshot._data.matcher
    counting = matcher.counting(rec.loop, "f", False)
    head = counting.prerequisite_head("p")
    assert type(head) is Code and head.plain  # a counting head, made
    del head
    shared = matcher.counting_state(rec, "f", True)
    gone = weakref.ref(matcher)
    gc.disable()
    try:
        del snapshot, matcher, counting, shared
        assert gone() is None
    finally:
        gc.enable()
