"""What evaluations log: an unknown flag key once, a failing flag once then counted."""

from __future__ import annotations

import enum
import logging
from typing import Any

import pytest

from aioflags import Client, Config, Context
from aioflags._datasystem._store import snapshot_from_data
from aioflags._evaluation import _door, _evaluate
from aioflags._evaluation._logonce import Occurrences
from aioflags.testing import FlagData
from tests.analytics import recorder_for

USER = Context.create("u1")
#: A context attribute too large for a float: the rule's comparison raises.
HUGE = Context.create("u2", attributes={"big": 10**400})


def flag(key: str, **fields: Any) -> dict[str, Any]:
    return {
        "key": key,
        "version": 1,
        "on": True,
        "variations": [True, False],
        "fallthrough": {"variation": 0},
        "offVariation": 1,
        "salt": "s",
        **fields,
    }


def raising(key: str) -> dict[str, Any]:
    """A flag whose evaluation raises for ``HUGE`` (EXCEPTION)."""
    clause = {"attribute": "big", "op": "lessThan", "values": [2**60], "negate": False}
    rule = {"id": "r", "clauses": [clause], "variation": 1}
    return flag(key, rules=[rule])


def chain(length: int) -> dict[str, object]:
    """``length`` flags, each the prerequisite of the one before."""
    return {
        f"c{i}": flag(
            f"c{i}",
            prerequisites=[{"key": f"c{i + 1}", "variation": 0}]
            if i + 1 < length
            else [],
        )
        for i in range(length)
    }


def lines(caplog: pytest.LogCaptureFixture, text: str, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if text in r.getMessage() and r.levelno == level
    ]


# ------------------------------------------------------------ unknown keys
def test_an_unknown_key_is_warned_once_per_key_by_every_method(
    caplog: pytest.LogCaptureFixture,
) -> None:
    snap = snapshot_from_data({"known": flag("known")}, {})
    for _ in range(3):
        assert snap.variation("knwon", USER, "d") == "d"
        assert snap.variation_detail("knwon", USER, "d").error_kind == "FLAG_NOT_FOUND"
        assert snap.bool_variation("knwon", USER, False) is False
        assert snap.string_variation("other", USER, "d") == "d"
        assert snap.variation("known", USER, False) is True
    warned = lines(caplog, "No flag", logging.WARNING)
    assert len(warned) == 2
    assert warned[0].startswith("No flag 'knwon' in the flag data")
    assert "FLAG_NOT_FOUND" in warned[0] and "typo" in warned[0]
    assert warned[1].startswith("No flag 'other'")
    assert "known" not in _door._UNKNOWN_KEYS  # known keys: nothing remembered


def test_an_unknown_key_with_events_on_is_looked_into_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``variation`` leaves the warning to the recording path: one call, not two."""
    calls: list[str] = []
    unknown_flag = _door._unknown_flag

    def counted(key: str, client: str | None) -> Any:
        calls.append(key)
        return unknown_flag(key, client)

    monkeypatch.setattr(_door, "_unknown_flag", counted)
    recorder = recorder_for(Config("k"), now_ms=lambda: 1000)
    snap = snapshot_from_data({"known": flag("known")}, {}).recording(recorder)
    assert snap.variation("knwon", USER, "d") == "d"
    assert calls == ["knwon"]
    assert len(lines(caplog, "No flag 'knwon'", logging.WARNING)) == 1
    batch = recorder.take()
    assert batch is not None  # counted as an unknown flag's evaluation


def test_invalid_contexts_are_remembered_up_to_a_bound_which_is_said_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_door, "_INVALID_CONTEXTS", Occurrences(2))
    monkeypatch.setattr(_door, "_MAX_INVALID_CONTEXTS", 2)
    snap = snapshot_from_data({"f": flag("f")}, {})
    for round_ in range(2):
        for kind in ("kind", "multi", "a b", "c d"):  # four reasons
            context = Context.create("k", kind=kind)
            assert snap.variation("f", context, round_) == round_
    assert len(lines(caplog, "got an invalid Context", logging.WARNING)) == 2
    assert lines(caplog, "reasons for an invalid", logging.WARNING) == [
        "2 reasons for an invalid context have been logged: further ones are not "
        "(their evaluations still return the default, USER_NOT_SPECIFIED)"
    ]
    assert len(_door._INVALID_CONTEXTS._counts) == 2  # bounded


def test_a_snapshot_that_is_not_ready_says_nothing_of_the_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aioflags import FlagSnapshot

    snap = FlagSnapshot()  # no data: CLIENT_NOT_READY is what the caller sees
    assert snap.variation_detail("f", None, "d").error_kind == "CLIENT_NOT_READY"
    assert snap.variation("f", None, "d") == "d"
    assert "context" not in caplog.text


def test_a_snapshot_that_is_not_ready_warns_of_no_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aioflags import FlagSnapshot

    snap = FlagSnapshot()  # no data yet: CLIENT_NOT_READY, not a typo
    assert snap.variation_detail("f", USER, "d").error_kind == "CLIENT_NOT_READY"
    assert snap.bool_variation("f", USER, False) is False
    assert "No flag" not in caplog.text


def test_unknown_keys_are_remembered_up_to_a_bound_which_is_said_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_door, "_UNKNOWN_KEYS", Occurrences(3))
    monkeypatch.setattr(_door, "_MAX_UNKNOWN_KEYS", 3)
    snap = snapshot_from_data({"known": flag("known")}, {})
    for round_ in range(2):
        for i in range(6):
            assert snap.variation(f"typo-{i}", USER, round_) == round_
    assert len(lines(caplog, "No flag", logging.WARNING)) == 3
    assert lines(caplog, "unknown flag keys have been logged", logging.WARNING) == [
        "3 unknown flag keys have been logged: further unknown keys are not "
        "(their evaluations still return the default, FLAG_NOT_FOUND)"
    ]
    assert len(_door._UNKNOWN_KEYS._counts) == 3  # bounded


@pytest.mark.asyncio
async def test_the_async_client_warns_of_an_unknown_key_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = FlagData()
    data.set_value("checkout", True)
    config = Config(data_system=data.data_system(), send_events=False)
    async with Client(config) as client:
        for _ in range(3):
            assert await client.variation("chekcout", USER, "d") == "d"
            assert await client.bool_variation("chekcout", USER, False) is False
            detail = await client.variation_detail("chekcout", USER, "d")
            assert detail.error_kind == "FLAG_NOT_FOUND"
            assert await client.bool_variation("checkout", USER, False) is True
    assert len(lines(caplog, "No flag 'chekcout'", logging.WARNING)) == 1


# --------------------------------------------------------- not a key
#: Flag keys of the wrong type, an unhashable one first (a dict lookup
#: with it raises TypeError: checked before any lookup).
NOT_KEYS: list[Any] = [["known"], None, 5, b"known"]


class Key(str, enum.Enum):
    """A ``StrEnum``-style key: a str subclass is a key like any other."""

    KNOWN = "known"


def test_a_key_that_is_not_a_str_gives_the_default_by_every_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain = snapshot_from_data({"known": flag("known")}, {})
    recorder = recorder_for(Config("k"), now_ms=lambda: 1000)
    recording = plain.recording(recorder)
    for snap in (plain, recording):
        for key in NOT_KEYS:
            assert snap.variation(key, USER, "d") == "d"
            detail = snap.variation_detail(key, USER, "d")
            assert (detail.value, detail.error_kind) == ("d", "FLAG_NOT_FOUND")
            assert snap.bool_variation(key, USER, False) is False
            assert snap.string_variation_detail(key, USER, "d").value == "d"
        assert snap.variation(Key.KNOWN, USER, False) is True
        assert snap.bool_variation_detail(Key.KNOWN, USER, False).value is True
    assert recorder.take() is not None  # the enum key's evaluations only
    said = lines(caplog, "aioflags flag keys are str", logging.ERROR)
    assert said == [
        "aioflags flag keys are str, got list ['known']: the default is returned "
        "(FLAG_NOT_FOUND)",
        "aioflags flag keys are str, got NoneType None: the default is returned "
        "(FLAG_NOT_FOUND)",
        "aioflags flag keys are str, got int 5: the default is returned "
        "(FLAG_NOT_FOUND)",
        "aioflags flag keys are str, got bytes b'known': the default is returned "
        "(FLAG_NOT_FOUND)",
    ]  # once per type, not per call or per snapshot
    assert "No flag" not in caplog.text


@pytest.mark.asyncio
@pytest.mark.parametrize("hooked", [False, True])
async def test_the_async_client_gives_the_default_for_a_key_that_is_not_a_str(
    caplog: pytest.LogCaptureFixture, hooked: bool
) -> None:
    from aioflags import Hook

    class Seen(Hook):
        def before_evaluation(self, series_context: Any, data: Any) -> Any:
            keys.append(series_context.key)
            return data

    keys: list[Any] = []
    data = FlagData()
    data.set_value("known", True)
    config = Config(
        data_system=data.data_system(),
        send_events=False,
        hooks=[Seen()] if hooked else [],
    )
    async with Client(config) as client:
        for key in NOT_KEYS:
            assert await client.variation(key, USER, "d") == "d"
            detail = await client.variation_detail(key, USER, "d")
            assert detail.error_kind == "FLAG_NOT_FOUND"
            assert await client.int_variation(key, USER, 3) == 3
        assert await client.variation(Key.KNOWN, USER, False) is True
        assert (await client.variation_detail(Key.KNOWN, USER, False)).value is True
    assert len(lines(caplog, "aioflags flag keys are str", logging.ERROR)) == 4
    assert keys == ([k for k in NOT_KEYS for _ in range(3)] + [Key.KNOWN] * 2) * hooked


# --------------------------------------------------------- failing flags
def test_a_failing_flag_logs_its_traceback_once_then_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "aioflags")
    snap = snapshot_from_data({"f": raising("f"), "g": raising("g")}, {})
    for _ in range(1000):
        detail = snap.variation_detail("f", HUGE, "d")
        assert (detail.value, detail.error_kind) == ("d", "EXCEPTION")
    snap.variation("g", HUGE, "d")
    first = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage().split(":")[0] for r in first] == [
        "Unexpected error evaluating flag 'f'",
        "Unexpected error evaluating flag 'g'",
    ]
    assert all(r.exc_info is not None for r in first)  # the traceback, once each
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 2
    counted = lines(caplog, "Flag 'f' has failed", logging.WARNING)
    assert [line.split(" (")[0] for line in counted] == [
        "Flag 'f' has failed 10 times",
        "Flag 'f' has failed 100 times",
        "Flag 'f' has failed 1000 times",
    ]
    assert "OverflowError" in counted[0]
    assert len(lines(caplog, "could not be evaluated again", logging.DEBUG)) == 996


def test_a_deep_prerequisite_chain_is_malformed_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Too deep is the evaluator's rule (MAX_CHAIN_DEPTH), not a RecursionError."""
    snap = snapshot_from_data(chain(600), {})
    for _ in range(5):
        assert snap.variation_detail("c0", USER, "d").error_kind == "MALFORMED_FLAG"
    assert not [r for r in caplog.records if r.exc_info is not None]
    assert lines(caplog, "Flag 'c0'", logging.WARNING) == [
        "Flag 'c0' could not be evaluated: prerequisite chain deeper than 100 "
        "levels at 'c101'; the default is returned (MALFORMED_FLAG). Logged "
        "once; later failures of this flag are counted"
    ]


def test_a_malformed_flag_is_logged_once_per_flag(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A prerequisite cycle is found only when evaluating.
    bad = flag("bad", prerequisites=[{"key": "other", "variation": 0}])
    other = flag("other", prerequisites=[{"key": "bad", "variation": 0}])
    snap = snapshot_from_data({"bad": bad, "other": other}, {})
    for _ in range(20):
        assert snap.variation_detail("bad", USER, "d").error_kind == "MALFORMED_FLAG"
    warned = lines(caplog, "Flag 'bad'", logging.WARNING)
    assert len(warned) == 2
    assert "could not be evaluated" in warned[0] and "MALFORMED_FLAG" in warned[0]
    assert warned[1].startswith("Flag 'bad' has failed 10 times (MALFORMED_FLAG)")


def test_a_malformed_flag_or_segment_is_logged_once_per_version_however_often_it_comes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each poll or reconnect makes a new snapshot, whose flags compile again."""
    bad = flag("bad", variations="not a list")
    rollout = {"variations": [{"variation": 0, "weight": 10**400}]}
    heavy = flag("heavy", fallthrough={"rollout": rollout})
    seg = {"key": "s", "version": 1, "included": "not a list"}
    clause = {"attribute": "", "op": "segmentMatch", "values": ["s"]}
    reach = flag("reach", rules=[{"id": "r", "variation": 0, "clauses": [clause]}])
    flags: dict[str, object] = {"bad": bad, "heavy": heavy, "reach": reach}
    for version in (1, 1, 1, 2):  # three transfers of version 1, then version 2
        flags["bad"] = {**bad, "version": version}
        snap = snapshot_from_data(flags, {"s": seg})
        for key in flags:
            assert snap.variation_detail(key, USER, "d").error_kind == "MALFORMED_FLAG"
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert sum(m.startswith("Flag 'bad' is malformed") for m in said) == 2
    assert sum(m.startswith("Flag 'heavy' could not be compiled") for m in said) == 1
    assert sum(m.startswith("Segment 's' is malformed") for m in said) == 1


def test_a_malformed_flag_is_still_logged_once_the_record_of_versions_is_full(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aioflags._evaluation import _model

    monkeypatch.setattr(_model, "_SAID", Occurrences(1))
    bad = flag("bad", variations="not a list")
    for key in ("first", "second", "second"):
        snapshot_from_data({key: {**bad, "key": key}}, {}).variation(key, USER, 0)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert [m.split(" is malformed")[0] for m in said] == [
        "Flag 'first'",
        "Flag 'second'",  # not remembered: logged each time, never silent
        "Flag 'second'",
    ]


def test_failing_flags_are_remembered_up_to_a_bound_which_is_said_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_evaluate, "_FAILURES", Occurrences(2))
    monkeypatch.setattr(_evaluate, "_MAX_FAILING", 2)
    keys = [f"f{i}" for i in range(5)]
    snap = snapshot_from_data({k: raising(k) for k in keys}, {})
    for _ in range(3):
        for key in keys:
            assert snap.variation(key, HUGE, "d") == "d"
    assert len([r for r in caplog.records if r.exc_info is not None]) == 2
    assert lines(caplog, "have been logged", logging.WARNING) == [
        "Failures of 2 flags have been logged: failures of further flags are "
        "logged at DEBUG level only"
    ]
    assert len(_evaluate._FAILURES._counts) == 2  # bounded


def test_each_error_kind_of_one_flag_is_logged_once_and_counted_apart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One flag, two ways to fail: its first rule raises for HUGE
    # (EXCEPTION); its second reaches a malformed segment for USER
    # (MALFORMED_FLAG). Each kind is logged once in full, then counted on
    # its own: neither one's count hides or advances the other's.
    caplog.set_level(logging.DEBUG, "aioflags")
    bad_rule = {
        "id": "bad",
        "clauses": [
            {"attribute": "", "op": "segmentMatch", "values": ["s"], "negate": False}
        ],
        "variation": 1,
    }
    both = raising("f")
    both["rules"] = [*both["rules"], bad_rule]
    malformed = {"key": "s", "version": 1, "included": "not a list"}
    snap = snapshot_from_data({"f": both}, {"s": malformed})
    for _ in range(10):
        assert snap.variation_detail("f", HUGE, "d").error_kind == "EXCEPTION"
    for _ in range(100):
        assert snap.variation_detail("f", USER, "d").error_kind == "MALFORMED_FLAG"
    assert (
        len(lines(caplog, "Unexpected error evaluating flag 'f'", logging.ERROR)) == 1
    )
    assert len(lines(caplog, "Flag 'f' could not be evaluated", logging.WARNING)) == 1
    counted = lines(caplog, "Flag 'f' has failed", logging.WARNING)
    assert [line.split(",")[0] for line in counted] == [
        "Flag 'f' has failed 10 times (EXCEPTION)",
        "Flag 'f' has failed 10 times (MALFORMED_FLAG)",
        "Flag 'f' has failed 100 times (MALFORMED_FLAG)",
    ]


def test_a_part_that_evaluates_to_malformed_flag_is_logged_when_compiled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A rule serving a variation the flag does not have is MALFORMED_FLAG
    # only where an evaluation reaches it (LaunchDarkly's rule), from a
    # precomputed result: nothing raises, so nothing logged it. It is said
    # once, when the flag is compiled, naming the flag and the part; the
    # evaluations that reach it add nothing. A segment's, the same way.
    caplog.set_level(logging.DEBUG, "aioflags")
    bad_rule = {
        "id": "bad",
        "clauses": [{"attribute": "key", "op": "in", "values": ["u1"]}],
        "variation": 7,
    }
    segment = {
        "key": "s",
        "version": 1,
        "rules": [
            {
                "id": "r",
                "clauses": [],
                "weight": 50000,
                "bucketBy": "/a~x",  # a reference (with the kind): ~x is invalid
                "rolloutContextKind": "user",
            }
        ],
    }
    snap = snapshot_from_data(
        {"f": flag("f", rules=[bad_rule]), "g": flag("g")}, {"s": segment}
    )
    for _ in range(5):
        assert snap.variation_detail("f", USER, "d").error_kind == "MALFORMED_FLAG"
        assert snap.variation("g", USER, "d") is True
    # The same data again (a reconnect's full transfer): not said again.
    again = snapshot_from_data({"f": flag("f", rules=[bad_rule])}, {"s": segment})
    assert again.variation_detail("f", USER, "d").error_kind == "MALFORMED_FLAG"
    said = sorted(
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
    )
    tail = " (logged as it is compiled; `aioflags validate` lists them)"
    assert said == [
        "Flag 'f' evaluates to MALFORMED_FLAG wherever an evaluation reaches "
        "these parts: rules[0] serves variation 7, but the flag has 2 "
        "variations" + tail,
        "Segment 's' evaluates to MALFORMED_FLAG wherever an evaluation "
        "reaches these parts: a rollout has an invalid bucketBy reference "
        "'/a~x'" + tail,
    ]


def test_validate_lists_such_parts_without_logging_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aioflags._evaluation._model import checked_flag

    caplog.set_level(logging.DEBUG, "aioflags")
    bad_rule = {"id": "bad", "clauses": [], "variation": 7}
    _, problems = checked_flag("f", flag("f", rules=[bad_rule]))
    assert problems == ["rules[0] serves variation 7, but the flag has 2 variations"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_all_flags_state_reports_a_failing_flag_once_per_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The flag's entry lists the prerequisites its evaluation reached
    # before the abort, found by running its code again with a state of
    # its own: that re-run is not a second failure, neither logged nor
    # counted.
    caplog.set_level(logging.DEBUG, "aioflags")
    bad_rule = {
        "id": "bad",
        "clauses": [
            {"attribute": "", "op": "segmentMatch", "values": ["s"], "negate": False}
        ],
        "variation": 1,
    }
    bad = flag("f", prerequisites=[{"key": "p", "variation": 0}], rules=[bad_rule])
    malformed = {"key": "s", "version": 1, "included": "not a list"}
    snap = snapshot_from_data({"f": bad, "p": flag("p")}, {"s": malformed})
    for _ in range(10):
        state = snap.all_flags_state(USER, with_reasons=True)
        assert state.get_flag_reason("f") == {
            "kind": "ERROR",
            "errorKind": "MALFORMED_FLAG",
        }
        assert state.to_dict()["$flagsState"]["f"]["prerequisites"] == ["p"]
    assert len(lines(caplog, "Flag 'f' could not be evaluated:", logging.WARNING)) == 1
    assert len(lines(caplog, "could not be evaluated again", logging.DEBUG)) == 8
    assert [
        line.split(",")[0]
        for line in lines(caplog, "Flag 'f' has failed", logging.WARNING)
    ] == ["Flag 'f' has failed 10 times (MALFORMED_FLAG)"]


def test_all_flags_state_goes_on_after_flags_that_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The all-flags loop maps what a flag's code raises where it runs
    # (reported under its key) and goes on: every flag after two failing
    # ones is evaluated, a prerequisite's result serves the flag that
    # requires it, and each failure is logged once then counted once per
    # call.
    caplog.set_level(logging.DEBUG, "aioflags")
    miss = {
        "id": "m",
        "clauses": [
            {"attribute": "key", "op": "in", "values": ["nobody"], "negate": False}
        ],
        "variation": 1,
    }
    data: dict[str, object] = {
        "a": flag("a", rules=[miss]),
        "f": raising("f"),
        "g": raising("g"),
        "z": flag("z", rules=[miss], prerequisites=[{"key": "a", "variation": 0}]),
    }
    snap = snapshot_from_data(data, {})
    for details in (False, True) * 5:
        state = snap.all_flags_state(
            HUGE, with_reasons=True, details_only_for_tracked_flags=details
        )
        assert (state.get_flag_value("a"), state.get_flag_value("z")) == (True, True)
        assert (state.get_flag_value("f"), state.get_flag_value("g")) == (None, None)
        if not details:  # (else the untracked flags' reasons are left out)
            for key in ("f", "g"):
                assert state.get_flag_reason(key) == {
                    "kind": "ERROR",
                    "errorKind": "EXCEPTION",
                }
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert [r.getMessage().split(":")[0] for r in tracebacks] == [
        "Unexpected error evaluating flag 'f'",
        "Unexpected error evaluating flag 'g'",
    ]
    assert [
        line.split(" (")[0] for line in lines(caplog, "has failed", logging.WARNING)
    ] == ["Flag 'f' has failed 10 times", "Flag 'g' has failed 10 times"]


def test_a_malformed_part_served_after_a_big_segment_keeps_its_status() -> None:
    # A malformed part (an empty fallthrough) serves MALFORMED_FLAG without
    # raising: the big-segment status its evaluation reached is in the
    # reason, as LaunchDarkly gives it, with analytics events on too (the
    # recorded evaluation of a flag with prerequisites), where an abort
    # (raised) has none.
    big_rule = {
        "id": "big",
        "clauses": [
            {"attribute": "", "op": "segmentMatch", "values": ["b"], "negate": False}
        ],
        "variation": 1,
    }
    data: dict[str, object] = {
        "p": flag("p"),
        "f": flag(
            "f",
            prerequisites=[{"key": "p", "variation": 0}],
            rules=[big_rule],
            fallthrough={},
        ),
    }
    big = {"key": "b", "version": 1, "unbounded": True, "generation": 1}
    snap = snapshot_from_data(data, {"b": big})
    expected = {
        "kind": "ERROR",
        "errorKind": "MALFORMED_FLAG",
        "bigSegmentsStatus": "NOT_CONFIGURED",
    }
    assert dict(snap.variation_detail("f", USER, "d").reason) == expected
    recorder = recorder_for(Config("k"), now_ms=lambda: 1000)
    recording = snap.recording(recorder)
    assert dict(recording.variation_detail("f", USER, "d").reason) == expected


@pytest.mark.asyncio
@pytest.mark.parametrize("hooked", [False, True], ids=["events", "events+hook"])
async def test_a_flag_that_cannot_be_made_gives_its_default_with_events_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, hooked: bool
) -> None:
    """A bug in making a flag is that evaluation's EXCEPTION, never the caller's.

    With analytics events on, an evaluation is counted against its flag; a
    flag that cannot be made has none, so its evaluations go uncounted,
    and the caller still gets the default (the bug is logged once).
    """
    from aioflags import Hook
    from aioflags._evaluation import _tables
    from aioflags._evaluation._model import compile_flag as made
    from tests.analytics import flag, running

    def compile_flag(key: str, raw: Any) -> Any:
        if key == "broken":
            raise RuntimeError("a bug in making the flag")
        return made(key, raw)

    monkeypatch.setattr(_tables, "compile_flag", compile_flag)
    seen: list[str | None] = []

    class Seen(Hook):
        def after_evaluation(self, series_context: Any, data: Any, detail: Any) -> Any:
            seen.append(detail.error_kind)
            return data

    flags = {"broken": {**flag(), "key": "broken", "version": 1}}
    async with running(flags, hooks=[Seen()] if hooked else []) as (_, client, _c):
        user = Context.create("u1")
        for _ in range(2):
            assert await client.variation("broken", user, "d") == "d"
            detail = await client.variation_detail("broken", user, "d")
            assert (detail.value, detail.error_kind) == ("d", "EXCEPTION")
            assert await client.bool_variation("broken", user, False) is False
            assert client.snapshot().variation("broken", user, "d") == "d"
    assert seen == (["EXCEPTION"] * 8 if hooked else [])
    errors = [r for r in caplog.records if "Unexpected error" in r.getMessage()]
    assert len(errors) == 1
