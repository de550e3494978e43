"""A bug inside a fast path is an evaluation error, not a reason to take another path."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import pytest

from aioflags import Context
from aioflags._datasystem._store import snapshot_from_data
from aioflags._evaluation._codegen import Code
from tests.reference import _awaited, client_over


def _broken(ops: Any, context: Any, state: Any) -> NoReturn:
    raise AttributeError("a bug in the flag's code")


def _snapshot_with_a_broken_fast_path() -> Any:
    """A flag whose code, as the fast paths run it (its ops), raises AttributeError.

    Its ``run`` (what the driver runs) is intact: a fast path that hands the
    error to the driver answers the flag's real value, silently.
    """
    snap = snapshot_from_data(
        {
            "f": {
                "key": "f",
                "version": 1,
                "on": True,
                "variations": ["off", "on"],
                "offVariation": 0,
                "fallthrough": {"variation": 1},
                "rules": [
                    {
                        "id": "r",
                        "variation": 0,
                        "clauses": [
                            {"attribute": "key", "op": "in", "values": ["bob"]}
                        ],
                    }
                ],
            }
        },
        {},
    )
    flag = snap._data.flags["f"]
    assert flag.constant is None  # its code runs
    assert snap.variation("f", Context.create("ann"), "default") == "on"
    flag.code = Code(_broken, flag.code.plain, flag.code.operands)
    # The heads made of the intact code by that evaluation: made again.
    snap._data.matcher.heads.clear()
    return snap


def test_an_attribute_error_in_the_client_fast_path_is_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = client_over(_snapshot_with_a_broken_fast_path())
    ann = Context.create("ann")
    with caplog.at_level(logging.ERROR, "aioflags.evaluation"):
        detail = _awaited(client.variation_detail("f", ann, "default"))
        value = _awaited(client.variation("f", ann, "default"))
    assert detail.value == "default"
    assert dict(detail.reason) == {"kind": "ERROR", "errorKind": "EXCEPTION"}
    assert value == "default"
    assert "Unexpected error evaluating flag 'f'" in caplog.text


def test_an_attribute_error_in_all_flags_state_is_exception() -> None:
    snap = _snapshot_with_a_broken_fast_path()
    state = snap.all_flags_state(Context.create("ann"), with_reasons=True)
    assert state.valid
    assert state.get_flag_value("f") is None
    assert state.get_flag_reason("f") == {"kind": "ERROR", "errorKind": "EXCEPTION"}


def test_a_key_error_in_making_a_flag_head_is_exception_not_a_missing_flag(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug while the head is made (compiling the flag, choosing its path),
    # a KeyError at that, is the evaluation's EXCEPTION, logged: not
    # FLAG_NOT_FOUND, and not raised into the caller.
    from aioflags._evaluation._evaluate import Matcher

    snap = _snapshot_with_a_broken_fast_path()

    def buggy(self: Matcher, flag: object) -> NoReturn:
        raise KeyError("a bug in choosing the path")

    monkeypatch.setattr(Matcher, "_runnable", buggy)
    client = client_over(snap)
    ann = Context.create("ann")
    with caplog.at_level(logging.ERROR, "aioflags.evaluation"):
        detail = snap.variation_detail("f", ann, "default")
        value = _awaited(client.variation("f", ann, "default"))
    assert dict(detail.reason) == {"kind": "ERROR", "errorKind": "EXCEPTION"}
    assert value == "default"
    assert "Unexpected error evaluating flag 'f'" in caplog.text
    assert "No flag 'f'" not in caplog.text


def test_a_bug_in_the_flags_code_on_the_hooked_path_is_exception_the_hook_sees(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Hooks alone: the client runs their series around the flag's head in
    # the hook runner; a bug there is the evaluation's EXCEPTION, logged,
    # and what the after stage is shown (the caller's default).
    from aioflags._client._hooks import HookRunner
    from tests.reference import LastDetail

    seen = LastDetail()
    client = client_over(_snapshot_with_a_broken_fast_path(), HookRunner([seen]))
    with caplog.at_level(logging.ERROR, "aioflags.evaluation"):
        value = _awaited(client.variation("f", Context.create("ann"), "default"))
    assert value == "default"
    assert seen.detail is not None
    assert seen.detail.value == "default" and seen.detail.variation_index is None
    assert dict(seen.detail.reason) == {"kind": "ERROR", "errorKind": "EXCEPTION"}
    assert "Unexpected error evaluating flag 'f'" in caplog.text


_COMPOSITIONS = ["plain", "events", "hooks", "hooks+events"]


@pytest.mark.parametrize("method", ["variation", "variation_detail"])
@pytest.mark.parametrize("composition", _COMPOSITIONS)
def test_every_composition_maps_a_bug_in_the_flags_code_to_exception_once(
    caplog: pytest.LogCaptureFixture, composition: str, method: str
) -> None:
    # Every composition runs the one run step: what a flag's code raises
    # is mapped once (EXCEPTION, logged once with its traceback), counted
    # like any evaluation when events are on, and shown to the hooks'
    # after stage.
    from aioflags import Config
    from aioflags._client._hooks import HookRunner
    from tests.analytics import recorder_for
    from tests.reference import LastDetail

    seen = LastDetail()
    hooks = HookRunner([seen]) if "hooks" in composition else None
    recorder = recorder_for(Config("k")) if "events" in composition else None
    client = client_over(_snapshot_with_a_broken_fast_path(), hooks, recorder)
    assert client._evaluator.evaluation.name == composition
    ann = Context.create("ann")
    evaluate = getattr(client, method)
    with caplog.at_level(logging.ERROR, "aioflags.evaluation"):
        answers = [_awaited(evaluate("f", ann, "default")) for _ in range(3)]
    for answer in answers:
        value = answer if method == "variation" else answer.value
        assert value == "default"
        if method == "variation_detail":
            assert dict(answer.reason) == {"kind": "ERROR", "errorKind": "EXCEPTION"}
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, tracebacks
    assert "Unexpected error evaluating flag 'f'" in tracebacks[0].getMessage()
    if hooks is not None:
        assert seen.detail is not None
        assert dict(seen.detail.reason) == {"kind": "ERROR", "errorKind": "EXCEPTION"}
    if recorder is not None:
        (none,) = [none for key, _, _, none in recorder.counted() if key == "f"]
        assert none == 3  # three evaluations, none served a variation


def test_a_hooked_evaluation_maps_a_raising_head_itself() -> None:
    """The hooks' stage runs around the run step: EXCEPTION, the stages run."""
    from aioflags import Hook
    from aioflags._client._evaluator import compose
    from aioflags._client._hooks import HookRunner

    seen: list[object] = []

    class Seen(Hook):
        def after_evaluation(self, series_context: Any, data: Any, detail: Any) -> Any:
            seen.append(detail.error_kind)
            return data

    def broken(operands: object, context: object, matcher: object) -> NoReturn:
        raise RuntimeError("a bug in the flag's code")

    evaluation = compose(None, None, HookRunner([Seen()]))
    snapshot = _snapshot_with_a_broken_fast_path().composed(evaluation, None)
    snapshot._data.matcher.heads["f"] = Code(broken, True, ())
    assert snapshot.variation("f", Context.create("u"), "d") == "d"
    assert seen == ["EXCEPTION"]


_METHODS = [
    "variation",
    "variation_detail",
    "bool_variation",
    "int_variation",
    "float_variation",
    "string_variation",
    "json_variation",
    "bool_variation_detail",
    "int_variation_detail",
    "float_variation_detail",
    "string_variation_detail",
    "json_variation_detail",
]


@pytest.mark.parametrize("method", _METHODS)
@pytest.mark.parametrize("composition", _COMPOSITIONS)
def test_every_method_of_every_composition_answers_the_default_for_a_bug(
    composition: str, method: str
) -> None:
    from aioflags import Config
    from aioflags._client._hooks import HookRunner
    from tests.analytics import recorder_for
    from tests.reference import LastDetail

    hooks = HookRunner([LastDetail()]) if "hooks" in composition else None
    recorder = recorder_for(Config("k")) if "events" in composition else None
    client = client_over(_snapshot_with_a_broken_fast_path(), hooks, recorder)
    answer = _awaited(getattr(client, method)("f", Context.create("ann"), "default"))
    if method.endswith("_detail"):
        assert answer.value == "default"
        assert answer.error_kind == "EXCEPTION"
    else:
        assert answer == "default"
