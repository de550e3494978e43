"""The client's evaluator: the store's data composed with events, hooks, big segments, gate."""

from __future__ import annotations

import importlib
import random
import sys
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import aioflags
from aioflags import (
    Client,
    Config,
    Context,
    EvaluationDetail,
    EvaluationSeriesContext,
    FlagSnapshot,
    Hook,
)
from aioflags._analytics._processor import EventProcessor
from aioflags._client._evaluator import Evaluator, compose
from aioflags._client._hooks import HookRunner
from aioflags._datasystem._datatypes import ObjectKind
from aioflags._datasystem._store import Store
from aioflags._evaluation._codegen import Code
from aioflags._evaluation._pipeline import PLAIN
from aioflags.testing import FakeClock, FlagData
from tests.analytics import recorder_for
from tests.test_store import delta, flag, full, put

USER = Context.create("u1")


class Observing(Hook):
    """A hook with stages of its own, recording what they see."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def before_evaluation(
        self, series_context: EvaluationSeriesContext, data: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        self.seen.append(("before", series_context.method))
        return data

    def after_evaluation(
        self,
        series_context: EvaluationSeriesContext,
        data: Mapping[str, Any],
        detail: EvaluationDetail[Any],
    ) -> Mapping[str, Any]:
        self.seen.append(("after", detail))
        return data


def _composed(evaluator: Evaluator) -> str:
    """The stages the evaluator's composition has (read anew each time)."""
    return evaluator.evaluation.name


def _ledger(evaluator: Evaluator) -> object:
    return evaluator.evaluation.ledger  # (read anew: mypy would narrow it)


def test_the_composition_is_decided_when_a_part_changes() -> None:
    # The client's evaluations run a composition of ordinary objects, built
    # for what is composed with the store's data: nothing (plain),
    # analytics events, hooks with a stage of their own, both. Each part
    # changes it at once; a gate is not part of it (awaited evaluations
    # pass it first).
    store = Store()
    evaluator = Evaluator(store)
    assert _composed(evaluator) == "plain"
    assert evaluator.evaluation is PLAIN
    store.apply_now(full(put("a", flag("a"))))
    assert evaluator.snapshot() is store.snapshot  # nothing to compose
    processor = EventProcessor(
        Config("k"), None, evaluator.record, FakeClock(), random.Random(0)
    )
    evaluator.record(processor, True)
    assert _composed(evaluator) == "events"
    assert _ledger(evaluator) is processor.recorder.loop
    recording = evaluator.snapshot()
    assert recording is not store.snapshot
    # the snapshots' evaluation counts on the recorder (any thread)
    assert recording._evaluation is evaluator.shared
    assert evaluator.shared.ledger is processor.recorder
    assert evaluator.snapshot() is recording  # made once per data version
    store.apply_now(delta(put("b", flag("b"))))
    assert evaluator.snapshot() is not recording  # the new data's
    evaluator.record(processor, False)
    assert _composed(evaluator) == "plain"
    assert _ledger(evaluator) is None
    assert evaluator.snapshot() is store.snapshot
    gate: Any = SimpleNamespace(always=True)  # a refresher, big segments
    evaluator.use_gate(gate)
    assert _composed(evaluator) == "plain"
    runner = HookRunner([Hook()])
    evaluator.use_hooks(runner)
    assert _composed(evaluator) == "plain"  # no stage of its own: nothing runs
    assert evaluator.snapshot() is store.snapshot
    runner.add(Observing())
    evaluator.use_hooks(runner)
    # Hooks alone: their stage runs around the same evaluation.
    assert _composed(evaluator) == "hooks"
    assert evaluator.snapshot()._evaluation.hooked
    evaluator.record(processor, True)  # recorded too
    assert _composed(evaluator) == "hooks+events"
    evaluator.record(processor, False)
    assert _composed(evaluator) == "hooks"


@pytest.mark.asyncio
async def test_a_clients_methods_are_its_class_methods_and_see_each_change() -> None:
    # issue 76: the client's evaluation methods are ordinary methods of its
    # class; a hook added, or events on, change what the next call runs.
    assert type(aioflags.Client) is type
    async with Client(
        Config(data_system=_data().data_system(), send_events=False)
    ) as client:
        assert await client.variation("f", USER, False) is True
        assert client.variation.__func__ is Client.variation  # type: ignore[attr-defined]
        assert "__dict__" not in dir(client)
        hook = Observing()
        client.add_hook(hook)
        assert client.variation.__func__ is Client.variation  # type: ignore[attr-defined]
        assert await client.variation("f", USER, False) is True
        assert await Client.variation(client, "f", USER, False) is True
        assert (await client.variation_detail("f", USER, False)).value is True
        assert await client.bool_variation("f", USER, False) is True
        assert await client.string_variation("f", USER, "x") == "x"  # WRONG_TYPE
        wrong = await client.string_variation_detail("f", USER, "x")
        assert wrong.error_kind == "WRONG_TYPE"
        methods = [method for stage, method in hook.seen if stage == "before"]
        assert methods == [
            "variation",
            "variation",
            "variation_detail",
            "bool_variation",
            "string_variation",
            "string_variation_detail",
        ]
    # A client not started, and after: its plain evaluator's data (none).
    assert await client.variation("f", USER, "default") == "default"


def test_the_store_holds_data_only() -> None:
    store = Store()
    assert not {"events", "hooks", "gate", "big_segments", "direct"} & set(
        Store.__slots__
    )
    assert "__setattr__" not in vars(Store)
    store.apply_now(full(put("s", {"key": "s", "version": 1}, ObjectKind.SEGMENT)))
    snapshot = store.snapshot
    assert snapshot._evaluation is PLAIN and not snapshot.observed
    assert snapshot._data.matcher.big_segments is None


def _data() -> FlagData:
    data = FlagData()
    data.update(data.flag("f").value_for_all(True))
    return data


@pytest.mark.asyncio
async def test_a_snapshot_handed_out_records_events_and_runs_hooks() -> None:
    from tests import analytics

    hook = Observing()
    flags = {"f": analytics.flag(trackEvents=True)}
    async with analytics.running(flags, hooks=[hook]) as (server, client, _):
        assert client._evaluator.events is not None  # events are on
        snapshot = client.snapshot()
        assert snapshot.bool_variation("f", USER, False) is True
        detail = snapshot.bool_variation_detail("f", USER, False)
        await client.flush()
        events = analytics.by_kind(server.events)
    assert hook.seen == [
        ("before", "bool_variation"),
        ("after", detail),
        ("before", "bool_variation_detail"),
        ("after", detail),
    ]
    # Both recorded as their methods record them: a tracked flag's feature
    # events (the detail method's with its reason), one summary counting two.
    features = events["feature"]
    assert [("reason" in e) for e in features] == [False, True]
    (summary,) = events["summary"]
    assert [c["count"] for c in summary["features"]["f"]["counters"]] == [2]


def test_a_hooked_evaluation_evaluates_and_records_once() -> None:
    """The stages see the result the caller gets: one evaluation, counted once."""
    recorder = recorder_for(Config("k"))
    hook = Observing()
    snapshot = _snapshot(recorder, HookRunner([hook]))
    runs: list[str] = []
    matcher = snapshot._data.matcher
    head = matcher.find_head("f")
    assert type(head) is Code
    run = head.run

    def counted(*args: Any) -> Any:
        runs.append("f")
        return run(*args)

    matcher.heads["f"] = Code(counted, head.plain, head.operands)
    assert snapshot.variation("f", USER, False) is True
    assert snapshot.variation_detail("f", USER, False).value is True
    assert runs == ["f", "f"]
    assert [stage for stage, _ in hook.seen] == ["before", "after"] * 2
    (_, counted_once), *_ = recorder.shared.counters.items()
    assert counted_once.counts[0] == 2


#: a rule that matches nobody: the flag's code runs (it is not constant)
_NOBODY = {
    "id": "r",
    "variation": 0,
    "clauses": [{"attribute": "key", "op": "in", "values": ["nobody"]}],
}


def _snapshot(recorder: Any, hooks: HookRunner) -> FlagSnapshot:
    from aioflags._datasystem._store import snapshot_from_data

    data = snapshot_from_data(
        {"f": flag("f", rules=[_NOBODY])},
    )
    return data.composed(compose(recorder, None, hooks), None)


def _our_classes() -> set[type]:
    """Every class defined in the package (every module imported)."""
    root = Path(aioflags.__file__).parent
    classes: set[type] = set()
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name in (
            "aioflags.__main__",
            "aioflags.otel",
            "aioflags.openfeature",
            "aioflags._client._ofanswers",
        ):
            continue  # optional extras, a script
        module = importlib.import_module(name)
        classes.update(
            v
            for v in vars(module).values()
            if isinstance(v, type) and v.__module__.startswith("aioflags")
        )
    return classes


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="typing.final sets __final__ from 3.11"
)
def test_no_class_of_ours_subclasses_a_final_class_of_ours() -> None:
    from aioflags._evaluation._evaluate import Matcher, _State

    classes = _our_classes()
    final = {c for c in classes if getattr(c, "__final__", False)}
    # (the walk works; the evaluation states are final: they compose)
    assert {FlagSnapshot, EvaluationDetail, Client, Matcher, _State} <= final
    offenders = {
        (c.__name__, base.__name__)
        for c in classes
        for base in c.__mro__[1:]
        if base in final
    }
    assert offenders == set()


#: The classes of ours that classes of ours subclass, and why each is made
#: to be a base (by module and qualified name). Exactly these: a new base
#: fails the test below (compose, don't subclass), and so does one that is
#: no longer subclassed (its entry goes).
BASES_BY_DESIGN: dict[str, str] = {
    "aioflags._core._frozen.Frozen": "the immutable value classes' base: fields only",
    "aioflags.AioflagsError": "the exception hierarchy callers catch",
    "aioflags.Hook": "the hooks' base, with a pass-through stage each: users "
    "subclass it, and so does the pytest plugin's flag coverage",
    "aioflags.sources.SourceError": "the exception hierarchy callers catch",
}


def test_no_class_of_ours_subclasses_a_concrete_class_of_ours() -> None:
    # A Protocol is an interface, not a class to inherit behaviour from.
    classes = _our_classes()
    bases = {
        f"{base.__module__}.{base.__qualname__}"
        for c in classes
        for base in c.__mro__[1:]
        if base in classes and not getattr(base, "_is_protocol", False)
    }
    assert bases == set(BASES_BY_DESIGN)


@pytest.mark.asyncio
async def test_now_or_later_evaluates_once_with_or_without_a_gate() -> None:
    store = Store()
    store.apply_now(full(put("a", flag("a", value="on"))))
    evaluator = Evaluator(store)
    # No gate: now() is the snapshot, and later() evaluates at once too.
    assert evaluator.now("a") is store.snapshot
    assert await evaluator.later(FlagSnapshot.variation, "a", USER, "d") == "on"
    asked: list[str] = []

    class Gate:
        always = False

        def passes(self, key: str) -> bool:
            asked.append(key)
            return key == "a"

        async def evaluate(self, key: str | None, context: Any, run: Any) -> Any:
            assert (key, context) == ("b", USER)  # the request, by name
            return ("gated", run(store.snapshot))

    gate: Any = Gate()  # (the part of EvaluationGate an evaluator uses)
    evaluator.use_gate(gate)
    assert evaluator.now("a") is store.snapshot
    assert evaluator.now("b") is None  # held back: later() goes through the gate
    assert await evaluator.later(FlagSnapshot.variation, "b", USER, "d") == (
        "gated",
        "d",
    )
    assert asked == ["a", "b"]


@pytest.mark.asyncio
async def test_a_kept_method_follows_the_client_through_compositions_and_runs() -> None:
    # client.variation is a bound method of the class: kept by a caller,
    # it answers as the client does now (its composition, its run).
    data = _data()
    client = Client(Config(data_system=data.data_system(), send_events=False))
    async with client:
        assert await client.variation("f", USER, False) is True
        kept = client.variation
        hook = Observing()
        client.add_hook(hook)
        assert await kept("f", USER, False) is True
        assert [stage for stage, _ in hook.seen] == ["before", "after"]
    assert await kept("f", USER, "default") == "default"  # not ready now
    data.update(data.flag("f").value_for_all(False))
    async with client:
        assert await kept("f", USER, "default") is False  # the new run's data


@pytest.mark.asyncio
async def test_a_patched_method_is_what_the_client_calls() -> None:
    # A test's stand-in on the class is what a call through any client
    # reaches; a client's own attributes are its slots (a stand-in on one
    # client, as any other attribute, is refused, saying which).
    from unittest import mock

    async with Client(
        Config(data_system=_data().data_system(), send_events=False)
    ) as client:
        assert await client.variation("f", USER, False) is True
        stand_in = mock.AsyncMock(return_value="class's")
        with mock.patch.object(Client, "variation", stand_in):
            assert await client.variation("f", USER, False) == "class's"
        assert await client.variation("f", USER, False) is True
        with (
            pytest.raises(AttributeError, match="variation"),
            mock.patch.object(client, "variation", mock.AsyncMock()),
        ):
            pass  # pragma: no cover - refused on entry
        assert await client.variation("f", USER, False) is True
    with pytest.raises(AttributeError, match="evnts"):
        client.evnts_enabled = True  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_hook_sees_only_real_files_between_the_caller_and_itself() -> None:
    # issue 76: every frame of an evaluation is a function of a file a
    # debugger, coverage and a traceback can show (no generated code).
    import traceback

    frames: list[traceback.FrameSummary] = []

    class Stack(Hook):
        def before_evaluation(
            self, series_context: EvaluationSeriesContext, data: Mapping[str, Any]
        ) -> Mapping[str, Any]:
            frames.extend(traceback.extract_stack())
            return data

    async def caller() -> object:
        return await client.variation("f", USER, False)

    async with Client(
        Config(data_system=_data().data_system(), hooks=[Stack()])
    ) as client:
        assert await caller() is True
    names = [frame.name for frame in frames]
    between = frames[names.index("caller") :]
    assert [frame.name for frame in between[:2]] == ["caller", "variation"]
    _all_of_real_files(between)


def _all_of_real_files(frames: list[Any]) -> None:
    for frame in frames:
        assert Path(frame.filename).is_file(), frame
        assert frame.line, frame  # its source line, read from the file
