"""Evaluation and track hooks: ordering, data, isolation, entry points, zero cost."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
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
    HookMetadata,
    TrackSeriesContext,
)
from aioflags._client._hooks import HookRunner, HookStage, OneHookStage, hook_stage
from aioflags._evaluation._pipeline import Step
from aioflags.blocking import Client as BlockingClient
from aioflags.testing import FlagData, FlagServer
from tests.analytics import by_kind, flag, running

USER = Context.create("u1")
Calls = list[tuple[Any, ...]]


class Recording(Hook):
    """Records every stage into a shared list; adds its name to the data."""

    def __init__(self, name: str, calls: Calls) -> None:
        self.name = name
        self.calls = calls

    @property
    def metadata(self) -> HookMetadata:
        return HookMetadata(name=self.name)

    def before_evaluation(
        self, series_context: EvaluationSeriesContext, data: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        self.calls.append((self.name, "before", series_context, dict(data)))
        return {**data, self.name: "seen"}

    def after_evaluation(
        self,
        series_context: EvaluationSeriesContext,
        data: Mapping[str, Any],
        detail: EvaluationDetail[Any],
    ) -> Mapping[str, Any]:
        self.calls.append((self.name, "after", series_context, dict(data), detail))
        return data

    def after_track(self, series_context: TrackSeriesContext) -> None:
        self.calls.append((self.name, "track", series_context))


class Failing(Recording):
    """Raises in the stages named; records the others."""

    def __init__(self, name: str, calls: Calls, *stages: str) -> None:
        super().__init__(name, calls)
        self.stages = stages

    def before_evaluation(
        self, series_context: EvaluationSeriesContext, data: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        if "before" in self.stages:
            raise RuntimeError(f"{self.name} before")
        return super().before_evaluation(series_context, data)

    def after_evaluation(
        self,
        series_context: EvaluationSeriesContext,
        data: Mapping[str, Any],
        detail: EvaluationDetail[Any],
    ) -> Mapping[str, Any]:
        if "after" in self.stages:
            raise RuntimeError(f"{self.name} after")
        return super().after_evaluation(series_context, data, detail)

    def after_track(self, series_context: TrackSeriesContext) -> None:
        if "track" in self.stages:
            raise RuntimeError(f"{self.name} track")
        super().after_track(series_context)


def data() -> FlagData:
    flags = FlagData()
    flags.update(
        flags.flag("b").variations(True, False).fallthrough(True),
        flags.flag("n").variations(7, 8).fallthrough(7),
        flags.flag("s").variations("x", "y").fallthrough("y"),
        flags.flag("p")
        .variations(True, False)
        .fallthrough(True)
        .prerequisite("b", True),
    )
    return flags


def stages(calls: Calls) -> list[tuple[str, str]]:
    return [(c[0], c[1]) for c in calls]


def hook_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records of the hooks' logger alone.

    (Not asyncio's: its debug mode warns of a slow callback on a loaded
    machine, "Executing <Task ...> took 0.278 seconds", into the same capture.)
    """
    return [r for r in caplog.records if r.name == "aioflags.hooks"]


@pytest.fixture
def caplog_hooks(
    caplog: pytest.LogCaptureFixture,
) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, "aioflags.hooks")
    return caplog


# ------------------------------------------------------------------ ordering
@pytest.mark.asyncio
async def test_before_in_registration_order_after_in_reverse() -> None:
    calls: Calls = []
    a, b, c = (Recording(n, calls) for n in "abc")
    config = Config(data_system=data().data_system(), hooks=[a, b])
    async with Client(config) as client:
        client.add_hook(c)  # appended after the configured ones
        assert await client.bool_variation("b", USER, False) is True
    assert stages(calls) == [
        ("a", "before"),
        ("b", "before"),
        ("c", "before"),
        ("c", "after"),
        ("b", "after"),
        ("a", "after"),
    ]


@pytest.mark.asyncio
async def test_each_hook_gets_its_own_data_fresh_for_every_evaluation() -> None:
    calls: Calls = []
    config = Config(
        data_system=data().data_system(),
        hooks=[Recording("a", calls), Recording("b", calls)],
    )
    async with Client(config) as client:
        await client.variation("b", USER, False)
        await client.variation("b", USER, False)
    befores = [c[3] for c in calls if c[1] == "before"]
    assert befores == [{}, {}, {}, {}]  # empty, and not shared between hooks
    afters = [(c[0], c[3]) for c in calls if c[1] == "after"]
    assert afters == [("b", {"b": "seen"}), ("a", {"a": "seen"})] * 2


@pytest.mark.asyncio
async def test_series_context_and_detail_are_what_the_caller_gets() -> None:
    calls: Calls = []
    config = Config(data_system=data().data_system(), hooks=[Recording("a", calls)])
    async with Client(config) as client:
        assert await client.string_variation("n", USER, "dflt") == "dflt"
    _, _, before, _ = calls[0]
    _, _, after, _, detail = calls[1]
    assert before is after
    assert before == EvaluationSeriesContext(
        key="n",
        context=USER,
        default_value="dflt",
        method="string_variation",
        environment_id=None,
    )
    # The default on error, with the error reason: exactly what was returned.
    assert detail.value == "dflt" and detail.variation_index is None
    assert detail.reason == {"kind": "ERROR", "errorKind": "WRONG_TYPE"}


@pytest.mark.asyncio
async def test_the_series_runs_for_a_missing_flag_and_a_client_not_ready() -> None:
    calls: Calls = []
    hooks = [Recording("a", calls)]
    async with Client(Config(data_system=data().data_system(), hooks=hooks)) as client:
        await client.variation("nope", USER, 1)
    closed = Client(Config(offline=True, hooks=hooks))
    await closed.variation("b", USER, 2)  # never started: CLIENT_NOT_READY
    kinds = [c[4].reason.get("errorKind") for c in calls if c[1] == "after"]
    assert kinds == ["FLAG_NOT_FOUND", "CLIENT_NOT_READY"]


# ---------------------------------------------------------- entry points
METHODS: list[tuple[str, str, Any]] = [
    ("variation", "b", False),
    ("variation_detail", "b", False),
    ("bool_variation", "b", False),
    ("bool_variation_detail", "b", False),
    ("int_variation", "n", 0),
    ("int_variation_detail", "n", 0),
    ("float_variation", "n", 0.5),
    ("float_variation_detail", "n", 0.5),
    ("string_variation", "s", ""),
    ("string_variation_detail", "s", ""),
    ("json_variation", "s", None),
    ("json_variation_detail", "s", None),
]


def check_once(calls: Calls, method: str, key: str, default: Any, result: Any) -> None:
    assert stages(calls) == [("a", "before"), ("a", "after")], method
    series, detail = calls[1][2], calls[1][4]
    assert (series.method, series.key, series.default_value) == (method, key, default)
    if method.endswith("_detail"):
        assert detail == result
    else:
        assert detail.value == result and detail.variation_index is not None


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "key", "default"), METHODS)
async def test_every_async_entry_point_runs_the_series_once(
    method: str, key: str, default: Any
) -> None:
    calls: Calls = []
    config = Config(data_system=data().data_system(), hooks=[Recording("a", calls)])
    async with Client(config) as client:
        result = await getattr(client, method)(key, USER, default)
    check_once(calls, method, key, default, result)


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "key", "default"), METHODS)
async def test_every_sync_snapshot_entry_point_runs_the_series_once(
    method: str, key: str, default: Any
) -> None:
    calls: Calls = []
    config = Config(data_system=data().data_system(), hooks=[Recording("a", calls)])
    async with Client(config) as client:
        snapshot = client.snapshot()
        assert isinstance(snapshot, FlagSnapshot)
        result = getattr(snapshot, method)(key, USER, default)
    check_once(calls, method, key, default, result)


@pytest.mark.parametrize(("method", "key", "default"), METHODS[:4])
def test_the_blocking_client_runs_the_series_once(
    method: str, key: str, default: Any
) -> None:
    calls: Calls = []
    config = Config(data_system=data().data_system(), hooks=[Recording("a", calls)])
    with BlockingClient(config) as client:
        result = getattr(client, method)(key, USER, default)
        check_once(calls, method, key, default, result)
        calls.clear()
        getattr(client.snapshot(), method)(key, USER, default)
        assert stages(calls) == [("a", "before"), ("a", "after")]


def test_the_blocking_client_adds_hooks_on_its_own_thread() -> None:
    calls: Calls = []
    with BlockingClient(Config(data_system=data().data_system())) as client:
        assert client.bool_variation("b", USER, False) is True
        assert calls == []
        client.add_hook(Recording("a", calls))
        assert client.bool_variation("b", USER, False) is True
        client.track("e", USER)
    assert stages(calls) == [("a", "before"), ("a", "after"), ("a", "track")]


@pytest.mark.asyncio
async def test_all_flags_state_and_prerequisites_run_no_hooks() -> None:
    calls: Calls = []
    config = Config(data_system=data().data_system(), hooks=[Recording("a", calls)])
    async with Client(config) as client:
        state = await client.all_flags_state(USER)
        assert state.valid and calls == []
        assert await client.bool_variation("p", USER, False) is True  # requires b
    assert [c[2].key for c in calls] == ["p", "p"]


@pytest.mark.asyncio
async def test_value_change_watchers_evaluate_without_hooks() -> None:
    calls: Calls = []
    flags = data()
    config = Config(data_system=flags.data_system(), hooks=[Recording("a", calls)])
    async with Client(config) as client:
        remove = client.add_flag_value_change_handler("b", USER, lambda change: None)
        flags.update(flags.flag("b").variations(True, False).fallthrough(False))
        remove()
    assert calls == []


# --------------------------------------------------------- error isolation
@pytest.mark.asyncio
async def test_a_failing_before_stage_leaves_everything_else_alone(
    caplog_hooks: pytest.LogCaptureFixture,
) -> None:
    calls: Calls = []
    hooks = [
        Recording("a", calls),
        Failing("x", calls, "before"),
        Failing("y", calls, "before"),
        Recording("b", calls),
    ]
    async with Client(Config(data_system=data().data_system(), hooks=hooks)) as client:
        for _ in range(3):
            assert await client.int_variation("n", USER, 0) == 7
    assert stages(calls)[:6] == [
        ("a", "before"),
        ("b", "before"),
        ("b", "after"),
        ("y", "after"),
        ("x", "after"),
        ("a", "after"),
    ]
    # After a failing before stage, the same hook's after stage gets empty data.
    assert {c[0]: c[3] for c in calls[:6] if c[1] == "after"} == {
        "a": {"a": "seen"},
        "b": {"b": "seen"},
        "x": {},
        "y": {},
    }
    errors = [r for r in hook_records(caplog_hooks) if r.levelno == logging.ERROR]
    assert [(r.hook, r.stage) for r in errors] == [  # type: ignore[attr-defined]
        ("x", "before_evaluation"),
        ("y", "before_evaluation"),
    ]
    assert errors[0].name == "aioflags.hooks" and errors[0].exc_info is not None
    assert "'x' raised in before_evaluation" in errors[0].getMessage()
    # Later failures of the same hook and stage are at DEBUG only.
    assert (
        len([r for r in hook_records(caplog_hooks) if r.levelno == logging.DEBUG]) == 4
    )


@pytest.mark.asyncio
async def test_a_failing_after_stage_leaves_the_value_and_other_hooks_alone(
    caplog_hooks: pytest.LogCaptureFixture,
) -> None:
    calls: Calls = []
    hooks = [Recording("a", calls), Failing("x", calls, "after")]
    async with Client(Config(data_system=data().data_system(), hooks=hooks)) as client:
        detail = await client.bool_variation_detail("b", USER, False)
        detail = await client.bool_variation_detail("b", USER, False)
    assert detail.value is True and detail.variation_index == 0
    assert stages(calls)[:3] == [("a", "before"), ("x", "before"), ("a", "after")]
    errors = [r for r in hook_records(caplog_hooks) if r.levelno == logging.ERROR]
    assert [(r.hook, r.stage) for r in errors] == [("x", "after_evaluation")]  # type: ignore[attr-defined]


class Forgetful(Hook):
    """Forgets to return the data from before_evaluation."""

    def __init__(self, seen: list[Mapping[str, Any]]) -> None:
        self.seen = seen

    def before_evaluation(  # type: ignore[override]
        self, series_context: EvaluationSeriesContext, data: Mapping[str, Any]
    ) -> None:
        pass

    def after_evaluation(
        self,
        series_context: EvaluationSeriesContext,
        data: Mapping[str, Any],
        detail: EvaluationDetail[Any],
    ) -> Mapping[str, Any]:
        self.seen.append(data)
        return data


@pytest.mark.asyncio
async def test_a_stage_that_returns_no_mapping_is_named_once(
    caplog_hooks: pytest.LogCaptureFixture,
) -> None:
    seen: list[Mapping[str, Any]] = []
    config = Config(data_system=data().data_system(), hooks=[Forgetful(seen)])
    async with Client(config) as client:
        await client.variation("b", USER, False)
        await client.variation("b", USER, False)
    assert seen == [{}, {}]
    (record,) = hook_records(caplog_hooks)
    assert "'Forgetful': before_evaluation returned NoneType" in record.getMessage()


class BrokenName(Failing):
    @property
    def metadata(self) -> HookMetadata:
        raise RuntimeError("no name")


@pytest.mark.asyncio
async def test_a_hook_whose_metadata_raises_is_named_by_its_class(
    caplog_hooks: pytest.LogCaptureFixture,
) -> None:
    hook = BrokenName("z", [], "before")
    async with Client(Config(data_system=data().data_system(), hooks=[hook])) as client:
        assert await client.bool_variation("b", USER, False) is True
    (record,) = hook_records(caplog_hooks)
    assert record.hook == "BrokenName"  # type: ignore[attr-defined]


def test_the_base_hook_passes_data_through_and_is_named_after_its_class() -> None:
    hook = Hook()
    series = EvaluationSeriesContext("k", USER, None, "variation")
    data = {"x": 1}
    detail = EvaluationDetail(value=1, variation_index=0, reason=aioflags.Reason())
    assert hook.before_evaluation(series, data) is data
    assert hook.after_evaluation(series, data, detail) is data
    hook.after_track(TrackSeriesContext("e", USER, None, None))
    assert hook.metadata == HookMetadata(name="Hook")


# ------------------------------------------------------------ added at run time
class Adder(Recording):
    """Adds another hook during its before stage."""

    def __init__(self, name: str, calls: Calls, client: Client, late: Hook) -> None:
        super().__init__(name, calls)
        self.client = client
        self.late: Hook | None = late

    def before_evaluation(
        self, series_context: EvaluationSeriesContext, data: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        if self.late is not None:
            self.client.add_hook(self.late)
            self.late = None
        return super().before_evaluation(series_context, data)


@pytest.mark.asyncio
async def test_a_hook_added_during_an_evaluation_applies_to_later_ones() -> None:
    calls: Calls = []
    client = Client(Config(data_system=data().data_system()))
    async with client:
        old_snapshot = client.snapshot()
        assert type(old_snapshot) is FlagSnapshot  # no hooks yet: the plain one
        client.add_hook(Adder("a", calls, client, Recording("late", calls)))
        await client.variation("b", USER, False)
        assert stages(calls) == [("a", "before"), ("a", "after")]
        calls.clear()
        await client.variation("b", USER, False)
        new_snapshot = client.snapshot()
        new_snapshot.variation("b", USER, False)
    assert (
        stages(calls)
        == [
            ("a", "before"),
            ("late", "before"),
            ("late", "after"),
            ("a", "after"),
        ]
        * 2
    )
    # A snapshot taken before the first hook was added stays unhooked.
    calls.clear()
    old_snapshot.variation("b", USER, False)
    assert calls == []


@pytest.mark.asyncio
async def test_hooks_added_before_start_apply_once_started() -> None:
    calls: Calls = []
    client = Client(Config(data_system=data().data_system()))
    client.add_hook(Recording("a", calls))
    async with client:
        assert await client.bool_variation("b", USER, False) is True
        # The evaluator created at start runs them, for the sync face too.
        before = client.snapshot()
    assert before._evaluation.hooked
    assert stages(calls) == [("a", "before"), ("a", "after")]


def test_hooks_must_be_sync_hook_instances() -> None:
    class Async(Hook):
        async def before_evaluation(  # type: ignore[override]
            self, series_context: EvaluationSeriesContext, data: Mapping[str, Any]
        ) -> Mapping[str, Any]:
            return data

    with pytest.raises(aioflags.ConfigurationError, match="is async"):
        Config(offline=True, hooks=[Async()])
    with pytest.raises(aioflags.ConfigurationError, match=r"aioflags\.Hook instances"):
        Config(offline=True, hooks=[object()])  # type: ignore[list-item]
    with pytest.raises(aioflags.ConfigurationError, match="sequence"):
        Config(offline=True, hooks=Hook())  # type: ignore[arg-type]
    client = Client(Config(offline=True))
    with pytest.raises(aioflags.ConfigurationError, match=r"add_hook\(\)"):
        client.add_hook(lambda: None)  # type: ignore[arg-type]
    assert Config(offline=True, hooks=[h := Hook()]).hooks == (h,)


# -------------------------------------------------------------------- track
@pytest.mark.asyncio
async def test_after_track_runs_in_order_after_the_event_is_recorded(
    caplog_hooks: pytest.LogCaptureFixture,
) -> None:
    calls: Calls = []
    hooks = [Recording("a", calls), Failing("x", calls, "track"), Recording("b", calls)]
    async with running({"f": flag()}, hooks=hooks) as (server, client, _):
        client.track("checkout", USER, {"cart": 3}, 9.5)
        client.track("visit", USER)
        await client.flush()
        custom = by_kind(server.events)["custom"]
    assert [e["key"] for e in custom] == ["checkout", "visit"]
    assert stages(calls) == [("a", "track"), ("b", "track")] * 2
    assert calls[0][2] == TrackSeriesContext(
        key="checkout", context=USER, data={"cart": 3}, metric_value=9.5
    )
    assert calls[2][2].data is None and calls[2][2].metric_value is None
    errors = [r for r in hook_records(caplog_hooks) if r.levelno == logging.ERROR]
    assert [(r.hook, r.stage) for r in errors] == [("x", "after_track")]  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_after_track_runs_with_events_off_and_no_hooks_means_no_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: Calls = []
    client = Client(Config(data_system=data().data_system()))
    async with client:
        monkeypatch.setattr(HookRunner, "after_track", fail)
        client.track("e", USER)  # no hooks: the runner is never touched
        monkeypatch.undo()
        client.add_hook(Recording("a", calls))
        client.track("e", USER)
    assert stages(calls) == [("a", "track")]


# ------------------------------------------------------- analytics untouched
@pytest.mark.asyncio
async def test_hooks_change_nothing_in_analytics_events() -> None:
    calls: Calls = []
    hooks = [Recording("a", calls)]
    async with running({"f": flag(trackEvents=True)}, hooks=hooks) as (
        server,
        client,
        _,
    ):
        assert await client.bool_variation("f", USER, False) is True
        assert client.snapshot().variation("f", USER, False) is True
        await client.flush()
        events = by_kind(server.events)
    # One feature event per evaluation, without a reason (value methods),
    # and a summary counting each evaluation once.
    assert [("reason" in e) for e in events["feature"]] == [False, False]
    (summary,) = events["summary"]
    assert summary["features"]["f"]["counters"][0]["count"] == 2
    assert [c[4].reason for c in calls if c[1] == "after"] == [
        {"kind": "FALLTHROUGH"}
    ] * 2


# ------------------------------------------------------------- zero cost
def fail(*args: object, **kwargs: object) -> Any:
    raise AssertionError("hook work with no hooks registered")


@pytest.mark.asyncio
async def test_an_evaluation_with_no_hooks_does_no_hook_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("after_track", "__init__"):
        monkeypatch.setattr(HookRunner, name, fail)
    monkeypatch.setattr("aioflags._client._evaluator.hook_stage", fail)
    monkeypatch.setattr("aioflags._client._hooks.EvaluationSeriesContext", fail)
    async with Client(Config(data_system=data().data_system())) as client:
        snapshot = client.snapshot()
        assert type(snapshot) is FlagSnapshot
        assert not snapshot.observed
        for method, key, default in METHODS:
            await getattr(client, method)(key, USER, default)
            getattr(snapshot, method)(key, USER, default)
        client.track("e", USER)


class TrackOnly(Hook):
    """Observes ``track()`` only: it has no evaluation stage of its own."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def after_track(self, series_context: TrackSeriesContext) -> None:
        self.calls.append(("track-only", "track", series_context))


@pytest.mark.asyncio
async def test_hooks_without_evaluation_stages_cost_evaluations_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No series context is built, and no hook stage is composed."""
    calls: Calls = []
    hooks = [Hook(), TrackOnly(calls)]
    monkeypatch.setattr("aioflags._client._hooks.EvaluationSeriesContext", fail)
    async with Client(Config(data_system=data().data_system(), hooks=hooks)) as client:
        snapshot = client.snapshot()
        assert not snapshot.observed  # no stage of its own: none written
        with monkeypatch.context() as patched:
            patched.setattr("aioflags._client._evaluator.hook_stage", fail)
            await client.variation("b", USER, False)  # the plain composition
        for method, key, default in METHODS:
            await getattr(client, method)(key, USER, default)
        for method, key, default in METHODS:
            plain = getattr(FlagSnapshot, method)(snapshot, key, USER, default)
            assert getattr(snapshot, method)(key, USER, default) == plain, method
        client.track("e", USER)
    assert stages(calls) == [("track-only", "track")]


class BeforeOnly(Recording):
    """Has a ``before_evaluation`` of its own, and Hook's ``after_evaluation``."""

    after_evaluation = Hook.after_evaluation


class AfterOnly(Recording):
    """Has an ``after_evaluation`` of its own, and Hook's ``before_evaluation``."""

    before_evaluation = Hook.before_evaluation


@pytest.mark.asyncio
async def test_only_a_hooks_own_stages_run_each_with_its_own_data() -> None:
    calls: Calls = []
    hooks = [
        AfterOnly("after-only", calls),
        Hook(),
        BeforeOnly("before-only", calls),
        Recording("both", calls),
    ]
    async with Client(Config(data_system=data().data_system(), hooks=hooks)) as client:
        assert await client.int_variation("n", USER, 0) == 7
        expected = await client.int_variation_detail("n", USER, 0)
    assert (
        stages(calls)
        == [
            ("before-only", "before"),
            ("both", "before"),
            ("both", "after"),
            ("after-only", "after"),
        ]
        * 2
    )
    both, after_only = calls[2], calls[3]
    assert both[3] == {"both": "seen"}
    assert after_only[3] == {}  # Hook's before_evaluation: its empty data
    assert both[4] == after_only[4] == expected
    assert both[2] == after_only[2] == calls[1][2]  # one series context


@pytest.mark.asyncio
async def test_a_stage_set_on_the_instance_before_registration_runs() -> None:
    calls: Calls = []
    hook = Hook()

    def before(
        series_context: EvaluationSeriesContext, data: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        calls.append(("instance", "before", series_context))
        return data

    hook.before_evaluation = before  # type: ignore[method-assign]
    async with Client(Config(data_system=data().data_system(), hooks=[hook])) as client:
        await client.variation("b", USER, False)
    assert stages(calls) == [("instance", "before")]


@pytest.mark.asyncio
async def test_a_hook_with_stages_added_after_a_no_op_one_runs_everywhere() -> None:
    calls: Calls = []
    client = Client(Config(data_system=data().data_system(), hooks=[Hook()]))
    async with client:
        await client.variation("b", USER, False)
        old_snapshot = client.snapshot()
        client.add_hook(Recording("a", calls))
        await client.variation("b", USER, False)
        client.snapshot().variation("b", USER, False)
        assert stages(calls) == [("a", "before"), ("a", "after")] * 2
        # A snapshot is evaluated as it was composed: taken before, unhooked.
        calls.clear()
        old_snapshot.variation("b", USER, False)
    assert calls == []


# ---------------------------------------------------------- environment id
@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/sdk/poll", "/sdk/latest-all"])
async def test_the_environment_id_comes_from_the_flag_service(path: str) -> None:
    calls: Calls = []
    async with FlagServer({"f": flag()}) as server:
        server.fail(path, headers={"X-LD-EnvID": "env-12345"})
        system = (
            aioflags.DataSystem.polling()
            if path == "/sdk/poll"
            else aioflags.DataSystem.custom(
                synchronizers=[aioflags.sources.fdv1_polling_synchronizer()]
            )
        )
        config = server.config(data_system=system, send_events=False)
        client = Client(config)
        async with client:
            await client.variation("f", USER, False)
            client.add_hook(Recording("a", calls))  # added after it was seen
            await client.variation("f", USER, False)
            client.track("e", USER)
    assert [c[2].environment_id for c in calls] == ["env-12345"] * 3


@pytest.mark.asyncio
async def test_the_environment_id_from_the_stream() -> None:
    calls: Calls = []
    async with FlagServer({"f": flag()}) as server:
        server.fail("/sdk/stream", headers={"X-LD-EnvID": "env-s"})
        config = server.config(
            data_system=aioflags.DataSystem.streaming(),
            send_events=False,
            hooks=[Recording("a", calls)],
        )
        async with Client(config) as client:
            await client.variation("f", USER, False)
    assert [c[2].environment_id for c in calls] == ["env-s"] * 2


def test_series_contexts_are_values() -> None:
    one = EvaluationSeriesContext("k", USER, None, "variation", "env")
    same = EvaluationSeriesContext("k", USER, None, "variation", "env")
    assert one == same and hash(one) == hash(same) and one != "k"
    assert one != EvaluationSeriesContext("k", USER, None, "variation_detail", "env")
    assert repr(one) == (
        f"EvaluationSeriesContext(key='k', context={USER!r}, default_value=None, "
        "method='variation', environment_id='env')"
    )
    with pytest.raises(AttributeError):
        one.key = "other"  # type: ignore[misc]


@pytest.mark.asyncio
async def test_the_stages_are_written_when_a_hook_is_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """issue 49, 59, 76: the hooks' stage is composed once per change, not per evaluation.

    A hook with no evaluation stage of its own composes nothing; one with a
    stage composes anew once (the client's evaluations and the snapshots'
    each have one), and evaluations after run what was composed.
    """
    built: list[int] = []

    def counted(runner: HookRunner, inner: Step) -> Step:
        built.append(1)
        return hook_stage(runner, inner)

    monkeypatch.setattr("aioflags._client._evaluator.hook_stage", counted)
    calls: Calls = []
    client = Client(Config(data_system=data().data_system(), hooks=[Hook()]))
    async with client:
        await client.variation("b", USER, False)
        assert built == []  # nothing observes: nothing written
        client.add_hook(Recording("a", calls))
        composed = len(built)
        assert composed == 2  # the client's evaluations', the snapshots'
        for _ in range(3):
            await client.variation("missing", USER, False)
            client.snapshot().variation("missing", USER, False)
        assert len(built) == composed  # not rebuilt per evaluation
        client.add_hook(Recording("b", calls))
        await client.variation("missing", USER, False)
        assert len(built) == 2 * composed
    assert [c[:2] for c in calls[:12]] == [("a", "before"), ("a", "after")] * 6


# ------------------------------------------- one hook: no loop, same series
class Returning(Recording):
    """Returns something other than a mapping from ``before_evaluation``."""

    def before_evaluation(  # type: ignore[override]
        self, series_context: EvaluationSeriesContext, data: Mapping[str, Any]
    ) -> object:
        super().before_evaluation(series_context, data)
        return ["not", "a", "mapping"]


ONE_HOOK: dict[str, Callable[[Calls], Hook]] = {
    "both stages": lambda calls: Recording("h", calls),
    "before raises": lambda calls: Failing("h", calls, "before"),
    "after raises": lambda calls: Failing("h", calls, "after"),
    "both raise": lambda calls: Failing("h", calls, "before", "after"),
    "before only": lambda calls: BeforeOnly("h", calls),
    "after only": lambda calls: AfterOnly("h", calls),
    "no mapping": lambda calls: Returning("h", calls),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(ONE_HOOK))
async def test_one_hook_runs_as_the_loop_over_hooks_runs_it(
    case: str, monkeypatch: pytest.MonkeyPatch, caplog_hooks: pytest.LogCaptureFixture
) -> None:
    """issue 87: one hook's stage has no loop; what it does is the loop's, exactly.

    The same hook, every method (a missing flag, a wrong type too), on the
    client and on a snapshot: the same answers, the same stages with the
    same series contexts, data and details, the same log lines, whether
    the client composes :class:`OneHookStage` (one hook) or the loop over
    hooks, :class:`HookStage`.
    """
    evaluations = [*METHODS, ("variation", "missing", 3), ("int_variation", "s", 1)]

    async def run(loop: bool) -> tuple[Any, ...]:
        calls: Calls = []
        caplog_hooks.clear()
        with monkeypatch.context() as patched:
            if loop:
                patched.setattr("aioflags._client._evaluator.hook_stage", HookStage)
            config = Config(
                data_system=data().data_system(), hooks=[ONE_HOOK[case](calls)]
            )
            async with Client(config) as client:
                step = type(client._evaluator.evaluation.step)
                answers = []
                for _ in range(2):
                    for method, key, default in evaluations:
                        answers.append(
                            await getattr(client, method)(key, USER, default)
                        )
                        snapshot = client.snapshot()
                        answers.append(getattr(snapshot, method)(key, USER, default))
        logged = [(r.levelno, r.getMessage()) for r in hook_records(caplog_hooks)]
        return step, answers, calls, logged

    one, loop = await run(loop=False), await run(loop=True)
    assert (one[0], loop[0]) == (OneHookStage, HookStage)
    assert one[1:] == loop[1:]
    assert one[2] or one[3], "the hook ran (or raised)"


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["config", "add_hook"])
async def test_a_hook_registered_twice_runs_twice(how: str) -> None:
    """Two registrations of one hook are two hooks' stages, as LaunchDarkly's SDK runs them.

    (Not the one-hook stage, which would run it once: a review of issue
    87 found that.) Each registration's ``after_evaluation`` gets the data
    its own ``before_evaluation`` returned, the last registered first.
    """
    calls: Calls = []
    hook = Recording("h", calls)
    hooks = [hook, hook] if how == "config" else [hook]
    async with Client(Config(data_system=data().data_system(), hooks=hooks)) as client:
        if how == "add_hook":
            client.add_hook(hook)
        assert type(client._evaluator.evaluation.step) is HookStage
        assert await client.bool_variation("b", USER, False) is True
        assert client.snapshot().bool_variation("b", USER, False) is True
    assert (
        stages(calls)
        == [("h", "before"), ("h", "before"), ("h", "after"), ("h", "after")] * 2
    )
    assert [c[3] for c in calls if c[1] == "after"] == [{"h": "seen"}] * 4


@pytest.mark.asyncio
async def test_two_hooks_each_with_one_stage_both_run() -> None:
    """A hook with only a before stage and another with only an after stage: two hooks, both run."""
    calls: Calls = []
    hooks = [BeforeOnly("first", calls), AfterOnly("second", calls)]
    async with Client(Config(data_system=data().data_system(), hooks=hooks)) as client:
        assert type(client._evaluator.evaluation.step) is HookStage
        assert await client.int_variation("n", USER, 0) == 7
    assert stages(calls) == [("first", "before"), ("second", "after")]
    assert calls[1][3] == {}  # (the after-only hook's own data: none)
