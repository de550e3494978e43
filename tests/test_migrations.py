"""Technology migrations: stages, the migrator, and migration_op events (docs/migrations.md).

A client on 127.0.0.1 (tests/analytics.py's FlagServer, which also receives
the events); origins are scripted coroutines that record their calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import pytest

import aioflags
import aioflags._client._migrator as migrator_module
import aioflags._evaluation._migration as migration_module
from aioflags import Context, EvaluationSeriesContext, Hook, HookMetadata
from aioflags.migrations import (
    BlockingMigrator,
    ExecutionOrder,
    Migrator,
    MigratorBuilder,
    MigratorCompareFn,
    Operation,
    OperationResult,
    Origin,
    Result,
    Stage,
    WriteResult,
)
from aioflags.testing import FlagBuilder
from tests.analytics import running

if sys.version_info < (3, 11):  # a builtin from 3.11; anyio's dependency before
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from aioflags._core._json import JSONObject

pytestmark = pytest.mark.asyncio

USER = Context.create("u1", name="Ann")
STAGES = [stage.value for stage in Stage]
T = TypeVar("T")
BOUND = 10.0  # a safety net for waits on other threads, never a synchronisation


@pytest.fixture(autouse=True)
def _forget_logged_stages() -> None:
    """Each test sees the first warning for a flag's value or a default (logged once)."""
    migration_module._NOT_STAGES.clear()
    migration_module._BAD_DEFAULTS.clear()


def migration_flag(stage: str | Any, **fields: Any) -> JSONObject:
    """A migration flag serving ``stage`` to everyone (its variations: the stages)."""
    variations: list[Any] = list(STAGES)
    if stage not in variations:
        variations.append(stage)
    return {
        "on": True,
        "version": 7,
        "variations": variations,
        "fallthrough": {"variation": variations.index(stage)},
        "offVariation": 0,
        **fields,
    }


def migration_ops(events: list[JSONObject]) -> list[JSONObject]:
    return [e for e in events if e["kind"] == "migration_op"]


def measurement(event: JSONObject, key: str) -> Any:
    found = [m for m in event["measurements"] if m["key"] == key]
    return found[0] if found else None


class Origins:
    """Scripted origins: each records its call and returns ``(name, payload)``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: set[str] = set()

    def origin(self, name: str) -> Callable[[Any], Any]:
        async def call(payload: Any) -> Result[Any]:
            self.calls.append(name)
            if name in self.fail:
                return Result.fail(f"{name} failed")
            return Result.success((name, payload))

        return call

    def migrator(
        self,
        client: aioflags.Client,
        order: ExecutionOrder = ExecutionOrder.SERIAL,
        comparison: MigratorCompareFn | None = None,
    ) -> Migrator:
        return (
            MigratorBuilder(client)
            .read(self.origin("read-old"), self.origin("read-new"), comparison)
            .write(self.origin("write-old"), self.origin("write-new"))
            .read_execution_order(order)
            .build()
        )


# --------------------------------------------------------- migration_variation
@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
async def test_migration_variation_serves_each_stage(stage: Stage) -> None:
    async with running({"m": migration_flag(stage.value)}) as (_, client, _):
        got, tracker = await client.migration_variation("m", USER, Stage.OFF)
    assert got is stage
    assert isinstance(tracker, aioflags.migrations.OpTracker)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("bogus", {"kind": "ERROR", "errorKind": "WRONG_TYPE"}),
        (3, {"kind": "ERROR", "errorKind": "WRONG_TYPE"}),
        ("LIVE", {"kind": "ERROR", "errorKind": "WRONG_TYPE"}),
    ],
    ids=["unknown-name", "number", "wrong-case"],
)
async def test_a_value_that_names_no_stage_gives_the_default_and_wrong_type(
    value: Any, reason: JSONObject
) -> None:
    async with running({"m": migration_flag(value)}) as (server, client, _):
        stage, tracker = await client.migration_variation("m", USER, Stage.LIVE)
        tracker.operation(Operation.READ).invoked(Origin.NEW)
        client.track_migration_op(tracker)
        await client.flush()
    assert stage is Stage.LIVE
    (event,) = migration_ops(server.events)
    # The default, no variation, the reason: as LaunchDarkly sends it.
    assert event["evaluation"] == {
        "key": "m",
        "value": "live",
        "version": 7,
        "default": "live",
        "reason": reason,
    }
    # The evaluation itself is counted as it was served.
    (summary,) = [e for e in server.events if e["kind"] == "summary"]
    (counter,) = summary["features"]["m"]["counters"]
    assert counter["value"] == value
    assert summary["features"]["m"]["default"] == "live"


async def test_a_missing_flag_gives_the_default_stage_with_flag_not_found() -> None:
    async with running({}) as (server, client, _):
        stage, tracker = await client.migration_variation("nope", USER, Stage.SHADOW)
        client.track_migration_op(
            tracker.operation(Operation.WRITE).invoked(Origin.OLD)
        )
        await client.flush()
    assert stage is Stage.SHADOW
    (event,) = migration_ops(server.events)
    assert event["evaluation"] == {
        "key": "nope",
        "value": "shadow",
        "default": "shadow",
        "reason": {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"},
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [("shadw", "'shadw'"), (True, "True"), ({"stage": "live"}, "{'stage': 'live'}")],
    ids=["typo", "boolean-flag", "object"],
)
async def test_a_value_that_names_no_stage_is_logged_once_per_flag_and_value(
    value: Any, shown: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The operation goes to the default stage's origins: never silently."""
    origins = Origins()
    flags = {"m": migration_flag(value), "other": migration_flag(value)}
    async with running(flags) as (_, client, _):
        migrator = origins.migrator(client)
        for _ in range(3):
            result = await migrator.read("m", USER, Stage.SHADOW)
        await migrator.write("other", USER, Stage.COMPLETE)
    assert result.origin is Origin.OLD  # shadow's authoritative origin
    assert origins.calls == [*["read-old", "read-new"] * 3, "write-new"]
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.name == "aioflags.migrations" and r.levelno == logging.WARNING
    ]
    assert warned == [
        f"Migration flag {key!r} served {shown}, which is not a stage (one of "
        "'off', 'dualwrite', 'shadow', 'live', 'rampdown', 'complete'); the "
        f"default stage {stage!r} is used (reason WRONG_TYPE). Make the flag's "
        "variations the stage names, or fix the one that is misspelt. Logged "
        "once per flag and value"
        for key, stage in (("m", "shadow"), ("other", "complete"))
    ]


async def test_each_value_of_a_flag_that_names_no_stage_is_logged() -> None:
    from aioflags._datasystem._store import snapshot_from_data

    with pytest.MonkeyPatch.context() as patch:
        said: list[tuple[Any, ...]] = []
        patch.setattr(
            migration_module.logger, "warning", lambda *args: said.append(args[1:3])
        )
        for value in ("shadw", "shadw", "lvie"):
            snapshot = snapshot_from_data({"m": migration_flag(value)}, {})
            stage, _ = snapshot.migration_variation("m", USER, Stage.OFF)
            assert stage is Stage.OFF
    assert said == [("m", "'shadw'"), ("m", "'lvie'")]


@pytest.mark.parametrize(
    ("default", "said"),
    [
        ("off", "not 'off' (str): pass Stage.OFF"),
        ("live", "not 'live' (str): pass Stage.LIVE"),
        (3, "not 3 (int): pass a Stage (from aioflags.migrations)"),
        (None, "not None (NoneType): pass a Stage (from aioflags.migrations)"),
    ],
    ids=["off-as-str", "live-as-str", "int", "none"],
)
async def test_a_default_that_is_not_a_stage_is_logged_once_and_off_is_used(
    default: object, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running({}) as (_, client, _):
        for _ in range(2):
            stage, _ = await client.migration_variation("nope", USER, default)  # type: ignore[arg-type]
            assert stage is Stage.OFF
    (record,) = [r for r in caplog.records if r.name == "aioflags.migrations"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        f"The default stage must be an aioflags.migrations.Stage, {said}. "
        "Stage.OFF is used meanwhile. Logged once per value"
    )
    # Not LaunchDarkly's "'off' is not a valid stage; using 'off' instead".
    assert "not a valid stage" not in caplog.text


async def test_hooks_see_migration_variation_as_its_own_method() -> None:
    seen: list[tuple[str, Any, Any]] = []

    class Recording(Hook):
        @property
        def metadata(self) -> HookMetadata:
            return HookMetadata("recording")

        def after_evaluation(
            self,
            series_context: EvaluationSeriesContext,
            data: Mapping[str, Any],
            detail: aioflags.EvaluationDetail[Any],
        ) -> Mapping[str, Any]:
            seen.append((series_context.method, series_context.default_value, detail))
            return data

    flags = {"m": migration_flag("live"), "bad": migration_flag("bogus")}
    async with running(flags, hooks=[Recording()]) as (_, client, _):
        await client.migration_variation("m", USER, Stage.OFF)
        await client.migration_variation("bad", USER, Stage.SHADOW)
    assert [(m, d) for m, d, _ in seen] == [
        ("migration_variation", "off"),
        ("migration_variation", "shadow"),
    ]
    assert seen[0][2].value == "live"
    assert seen[1][2].value == "shadow"  # what the caller gets, with its reason
    assert seen[1][2].error_kind == "WRONG_TYPE"


async def test_the_snapshot_serves_stages_too() -> None:
    from aioflags._datasystem._store import snapshot_from_data

    snapshot = snapshot_from_data({"m": migration_flag("rampdown")}, {})
    stage, _ = snapshot.migration_variation("m", USER, Stage.OFF)
    assert stage is Stage.RAMPDOWN


# ----------------------------------------------------------- stage x operation
#: stage → (origins read, in SERIAL order; the authoritative one)
READS = {
    Stage.OFF: (["read-old"], Origin.OLD),
    Stage.DUALWRITE: (["read-old"], Origin.OLD),
    Stage.SHADOW: (["read-old", "read-new"], Origin.OLD),
    Stage.LIVE: (["read-new", "read-old"], Origin.NEW),
    Stage.RAMPDOWN: (["read-new"], Origin.NEW),
    Stage.COMPLETE: (["read-new"], Origin.NEW),
}
#: stage → origins written, in order (the first is authoritative)
WRITES = {
    Stage.OFF: ["write-old"],
    Stage.DUALWRITE: ["write-old", "write-new"],
    Stage.SHADOW: ["write-old", "write-new"],
    Stage.LIVE: ["write-new", "write-old"],
    Stage.RAMPDOWN: ["write-new", "write-old"],
    Stage.COMPLETE: ["write-new"],
}
ORIGIN = {"old": Origin.OLD, "new": Origin.NEW}


class _Draws(random.Random):
    """A random source whose ``random()`` returns the values given, in turn."""

    def __new__(cls, *values: float) -> _Draws:
        # Python 3.10's Random.__new__ refuses more than one argument.
        return super().__new__(cls)

    def __init__(self, *values: float) -> None:
        super().__init__(0)
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


@pytest.mark.parametrize("order", list(ExecutionOrder), ids=lambda o: o.value)
@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
async def test_read_calls_the_origins_the_stage_names(
    stage: Stage, order: ExecutionOrder
) -> None:
    # RANDOM: the first read draws "authoritative first", the second "other
    # first", from the client's random source (Client(random=...)).
    draws = _Draws(0.5, 0.49) if order is ExecutionOrder.RANDOM else _Draws()
    origins = Origins()
    flags = {"m": migration_flag(stage.value)}
    async with running(flags, rng=draws) as (server, client, _):
        migrator = origins.migrator(client, order)
        first = await migrator.read("m", USER, Stage.OFF, payload="p")
        calls_first, origins.calls = origins.calls, []
        await migrator.read("m", USER, Stage.OFF, payload="p")
        await client.flush()
    expected, authoritative = READS[stage]
    assert first == OperationResult(
        origin=authoritative,
        result=Result.success((f"read-{authoritative.value}", "p")),
    )
    if order is ExecutionOrder.PARALLEL:
        assert sorted(calls_first) == sorted(expected)
    else:
        assert calls_first == expected
    if order is ExecutionOrder.RANDOM:
        assert origins.calls == expected[::-1]
    if len(expected) == 2 and order is ExecutionOrder.RANDOM:
        assert draws.values == []  # both draws taken, one per read
    events = migration_ops(server.events)
    assert [e["operation"] for e in events] == ["read", "read"]
    invoked = {ORIGIN[name.split("-")[1]].value: True for name in expected}
    assert measurement(events[0], "invoked")["values"] == invoked


@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
async def test_write_calls_the_authoritative_origin_first(stage: Stage) -> None:
    origins = Origins()
    async with running({"m": migration_flag(stage.value)}) as (server, client, _):
        result = await origins.migrator(client).write("m", USER, Stage.OFF, payload=1)
        await client.flush()
    expected = WRITES[stage]
    assert origins.calls == expected
    assert isinstance(result, WriteResult)
    assert result.authoritative.origin is ORIGIN[expected[0].split("-")[1]]
    assert result.authoritative.value == (expected[0], 1)
    if len(expected) == 1:
        assert result.nonauthoritative is None
    else:
        assert result.nonauthoritative is not None
        assert result.nonauthoritative.value == (expected[1], 1)
    (event,) = migration_ops(server.events)
    assert event["operation"] == "write"
    assert set(measurement(event, "invoked")["values"]) == {
        name.split("-")[1] for name in expected
    }


@pytest.mark.parametrize("stage", [Stage.DUALWRITE, Stage.LIVE], ids=lambda s: s.value)
async def test_a_failed_authoritative_write_skips_the_other(stage: Stage) -> None:
    origins = Origins()
    authoritative = WRITES[stage][0]
    origins.fail.add(authoritative)
    async with running({"m": migration_flag(stage.value)}) as (server, client, _):
        result = await origins.migrator(client).write("m", USER, Stage.OFF)
        await client.flush()
    assert origins.calls == [authoritative]
    assert not result.authoritative.is_success()
    assert result.authoritative.error == f"{authoritative} failed"
    assert result.nonauthoritative is None
    (event,) = migration_ops(server.events)
    side = authoritative.split("-")[1]
    assert measurement(event, "invoked")["values"] == {side: True}
    assert measurement(event, "error")["values"] == {side: True}


# ------------------------------------------------------------------ PARALLEL
async def test_parallel_reads_really_overlap() -> None:
    """Each origin waits for the other to have started: only concurrency finishes."""
    started = {"old": anyio.Event(), "new": anyio.Event()}

    def origin(me: str, other: str) -> Callable[[Any], Any]:
        async def call(payload: Any) -> str:
            started[me].set()
            await started[other].wait()
            return me

        return call

    async with running({"m": migration_flag("live")}) as (_, client, _):
        migrator = (
            MigratorBuilder(client)
            .read(origin("old", "new"), origin("new", "old"))
            .write(origin("old", "new"), origin("new", "old"))
            .build()  # PARALLEL is the default
        )
        with anyio.fail_after(30):
            result = await migrator.read("m", USER, Stage.OFF)
    assert result.origin is Origin.NEW
    assert result.value == "new"


async def test_cancelling_the_caller_cancels_both_origins() -> None:
    started = {"old": anyio.Event(), "new": anyio.Event()}
    cancelled: list[str] = []
    returned: list[OperationResult] = []

    def origin(me: str) -> Callable[[Any], Any]:
        async def call(payload: Any) -> None:
            started[me].set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append(me)
                raise

        return call

    async with running({"m": migration_flag("shadow")}) as (server, client, _):
        migrator = (
            MigratorBuilder(client)
            .read(origin("old"), origin("new"))
            .write(origin("old"), origin("new"))
            .build()
        )
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:

                async def caller() -> None:
                    returned.append(await migrator.read("m", USER, Stage.OFF))

                tg.start_soon(caller)
                await started["old"].wait()
                await started["new"].wait()
                tg.cancel_scope.cancel()
        await client.flush()
    assert sorted(cancelled) == ["new", "old"]
    assert returned == []
    assert migration_ops(server.events) == []  # an operation cut short: no event


@pytest.mark.parametrize(
    ("cancelled_in", "reported"),
    [("write-new", {"old": True}), ("write-old", None)],
    ids=["after-the-authoritative-write", "during-the-authoritative-write"],
)
async def test_a_cancelled_write_still_reports_the_writes_that_completed(
    cancelled_in: str,
    reported: dict[str, bool] | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The authoritative write is not undone by the caller's cancellation."""
    written: list[str] = []
    entered = anyio.Event()

    def origin(name: str) -> Callable[[Any], Any]:
        async def call(payload: Any) -> str:
            if name == cancelled_in:
                entered.set()
                await anyio.sleep_forever()
            written.append(name)
            return name

        return call

    async with running({"m": migration_flag("dualwrite")}) as (server, client, _):
        migrator = (
            MigratorBuilder(client)
            .read(origin("read-old"), origin("read-new"))
            .write(origin("write-old"), origin("write-new"))
            .build()
        )
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(migrator.write, "m", USER, Stage.OFF)
                await entered.wait()
                tg.cancel_scope.cancel()
        await client.flush()
    events = migration_ops(server.events)
    if reported is None:
        assert written == []
        assert events == []  # nothing completed: nothing to report
        assert "no event will be emitted" not in caplog.text  # and no error logged
    else:
        assert written == ["write-old"]
        (event,) = events
        assert event["operation"] == "write"
        assert measurement(event, "invoked")["values"] == reported
        assert set(measurement(event, "latency_ms")["values"]) == set(reported)


async def test_an_origin_that_raises_is_a_failed_result_not_an_exception_group() -> (
    None
):
    boom = ValueError("connection refused")

    async def old(payload: Any) -> str:
        raise boom

    async def new(payload: Any) -> str:
        return "fine"

    async with running({"m": migration_flag("shadow")}) as (server, client, _):
        migrator = (
            MigratorBuilder(client)
            .read(old, new, lambda a, b: a == b)
            .write(old, new)
            .build()
        )
        result = await migrator.read("m", USER, Stage.OFF)
        await client.flush()
    assert result.origin is Origin.OLD
    assert not result.is_success()
    assert result.exception is boom
    assert result.error == "'old' operation raised an exception"
    (event,) = migration_ops(server.events)
    assert measurement(event, "error")["values"] == {"old": True}
    assert measurement(event, "consistent") is None  # one read failed: no check


class _Stop(BaseException):
    """Neither an Exception nor a cancellation: not an origin's failed result."""


@pytest.mark.parametrize("order", list(ExecutionOrder), ids=lambda o: o.value)
async def test_a_base_exception_from_an_origin_propagates(
    order: ExecutionOrder,
) -> None:
    """As docs/migrations.md says: PARALLEL cancels the other call and groups it."""
    other_started = anyio.Event()
    other_cancelled: list[bool] = []

    async def stops(payload: Any) -> str:
        if order is ExecutionOrder.PARALLEL:
            await other_started.wait()
        raise _Stop

    async def other(payload: Any) -> str:
        other_started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            other_cancelled.append(True)
            raise
        return "unreachable"

    # RANDOM draws "authoritative first": the origin that stops runs first.
    flags = {"m": migration_flag("shadow")}
    async with running(flags, rng=_Draws(0.5)) as (server, client, _):
        migrator = (
            MigratorBuilder(client)
            .read(stops, other)
            .write(stops, other)
            .read_execution_order(order)
            .build()
        )
        with anyio.fail_after(30):
            try:
                await migrator.read("m", USER, Stage.OFF)
            except BaseException as exc:  # noqa: BLE001 - the raised shape is the subject
                raised = exc
        await client.flush()
    if order is ExecutionOrder.PARALLEL:
        assert isinstance(raised, BaseExceptionGroup)
        assert [type(e) for e in raised.exceptions] == [_Stop]
        assert other_cancelled == [True]  # waited for, never left running
    else:
        assert type(raised) is _Stop
    assert migration_ops(server.events) == []


#: Python 3.10 has no ``Task.cancelling()``: in the caller's task, an origin's
#: own CancelledError cannot be told from the caller's cancellation there, so
#: it propagates (docs/migrations.md); a parallel read's tasks are the migrator's.
TELLS_OWN_CANCELLATION_IN_THE_CALLERS_TASK = sys.version_info >= (3, 11)


class _Abandoned:
    """An origin whose call fails with a CancelledError of its own, its caller uncancelled.

    ``awaited``: it awaits a future that another task cancels (a shared
    request its owner gave up on); ``raised``: it raises one itself.
    """

    def __init__(self, how: str) -> None:
        self.how = how
        self.awaiting = anyio.Event()
        self.future: asyncio.Future[str] | None = None

    async def __call__(self, payload: Any) -> str:
        if self.how == "raised":
            raise asyncio.CancelledError
        self.future = asyncio.get_running_loop().create_future()
        self.awaiting.set()
        return await self.future

    async def alongside(self, operation: Awaitable[T]) -> T:
        """``operation``'s outcome, with another task cancelling the future awaited."""
        done: list[T] = []
        async with anyio.create_task_group() as tg:
            if self.how == "awaited":
                tg.start_soon(self._abandon)
            done.append(await operation)
        return done[0]

    async def _abandon(self) -> None:
        await self.awaiting.wait()
        assert self.future is not None
        self.future.cancel()


@pytest.mark.parametrize("how", ["awaited", "raised"])
@pytest.mark.parametrize(
    "order", [ExecutionOrder.PARALLEL, ExecutionOrder.SERIAL], ids=lambda o: o.value
)
@pytest.mark.parametrize("cancelled", ["old", "new"], ids=["authoritative", "other"])
async def test_an_origin_s_own_cancelled_error_is_its_failed_read(
    cancelled: str, order: ExecutionOrder, how: str
) -> None:
    """Not the read's cancellation: the failure is that origin's, the read goes on."""
    if (
        order is ExecutionOrder.SERIAL
        and not TELLS_OWN_CANCELLATION_IN_THE_CALLERS_TASK
    ):
        pytest.skip("Python 3.10 cannot tell it from the caller's cancellation")
    abandoned = _Abandoned(how)

    async def value(payload: Any) -> str:
        return "value"

    old, new = (abandoned, value) if cancelled == "old" else (value, abandoned)
    async with running({"m": migration_flag("shadow")}) as (server, client, _):
        migrator = (
            MigratorBuilder(client)
            .read(old, new, lambda a, b: a == b)
            .write(old, new)
            .read_execution_order(order)
            .build()
        )
        with anyio.fail_after(30):
            result = await abandoned.alongside(migrator.read("m", USER, Stage.OFF))
        await client.flush()
    assert result.origin is Origin.OLD  # shadow: the authoritative result
    if cancelled == "old":
        assert not result.is_success()
        assert isinstance(result.exception, asyncio.CancelledError)
        assert result.error == "'old' operation raised an exception"
    else:
        assert result.is_success()
        assert result.value == "value"
    (event,) = migration_ops(server.events)
    assert measurement(event, "invoked")["values"] == {"old": True, "new": True}
    assert measurement(event, "error")["values"] == {cancelled: True}
    assert measurement(event, "consistent") is None  # one read failed: no check


@pytest.mark.skipif(
    not TELLS_OWN_CANCELLATION_IN_THE_CALLERS_TASK,
    reason="Python 3.10 cannot tell it from the caller's cancellation",
)
@pytest.mark.parametrize("how", ["awaited", "raised"])
@pytest.mark.parametrize("cancelled", ["old", "new"], ids=["authoritative", "other"])
async def test_an_origin_s_own_cancelled_error_is_its_failed_write(
    cancelled: str, how: str
) -> None:
    abandoned = _Abandoned(how)

    async def value(payload: Any) -> str:
        return "written"

    old, new = (abandoned, value) if cancelled == "old" else (value, abandoned)
    async with running({"m": migration_flag("dualwrite")}) as (server, client, _):
        migrator = MigratorBuilder(client).read(old, new).write(old, new).build()
        with anyio.fail_after(30):
            result = await abandoned.alongside(migrator.write("m", USER, Stage.OFF))
        await client.flush()
    failed = result.authoritative if cancelled == "old" else result.nonauthoritative
    assert failed is not None
    assert failed.origin is ORIGIN[cancelled]
    assert isinstance(failed.exception, asyncio.CancelledError)
    if cancelled == "old":  # dualwrite: old is authoritative, new not written
        assert result.nonauthoritative is None
    else:
        assert result.authoritative.value == "written"
    written = {"old": True} if cancelled == "old" else {"old": True, "new": True}
    (event,) = migration_ops(server.events)
    assert event["operation"] == "write"
    assert measurement(event, "invoked")["values"] == written
    assert measurement(event, "error")["values"] == {cancelled: True}


@pytest.mark.parametrize("how", ["cancel-scope", "task-cancel"])
@pytest.mark.parametrize("operation", ["parallel-read", "serial-read", "write"])
async def test_cancelling_the_caller_still_cancels_the_operation(
    operation: str, how: str
) -> None:
    """The caller's cancellation is no origin's failure: it ends the operation.

    ``task-cancel`` is asyncio's own ``Task.cancel()`` (``asyncio.timeout``,
    aiohttp on a client disconnect), which no anyio cancel scope records.
    """
    started = anyio.Event()
    calls: list[str] = []
    cancelled: list[str] = []

    def origin(name: str) -> Callable[[Any], Any]:
        async def call(payload: Any) -> str:
            calls.append(name)
            if name.endswith("-old"):  # shadow: the authoritative one, called first
                started.set()
                try:
                    await anyio.sleep_forever()
                except anyio.get_cancelled_exc_class():
                    cancelled.append(name)
                    raise
            return name

        return call

    async with running({"m": migration_flag("shadow")}) as (server, client, _):
        order = ExecutionOrder.PARALLEL
        if operation == "serial-read":
            order = ExecutionOrder.SERIAL
        migrator = (
            MigratorBuilder(client)
            .read(origin("read-old"), origin("read-new"))
            .write(origin("write-old"), origin("write-new"))
            .read_execution_order(order)
            .build()
        )

        async def operate() -> OperationResult | WriteResult:
            if operation == "write":
                return await migrator.write("m", USER, Stage.OFF)
            return await migrator.read("m", USER, Stage.OFF)

        returned: list[OperationResult | WriteResult] = []
        natives: list[asyncio.Task[Any]] = []

        async def caller() -> None:
            if how == "cancel-scope":
                returned.append(await operate())
                return
            task = asyncio.current_task()
            assert task is not None
            natives.append(task)
            with pytest.raises(asyncio.CancelledError):  # no cancel scope catches it
                returned.append(await operate())

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(caller)
                await started.wait()
                if how == "cancel-scope":
                    tg.cancel_scope.cancel()
                else:
                    natives[0].cancel()
        await client.flush()
    assert returned == []
    first = "write-old" if operation == "write" else "read-old"
    assert cancelled == [first]
    if operation == "parallel-read":
        assert sorted(calls) == ["read-new", "read-old"]
    else:
        assert calls == [first]  # the other origin is never called
    assert migration_ops(server.events) == []  # nothing completed: no event


async def test_plain_origins_run_in_worker_threads_so_parallel_means_parallel() -> None:
    """Blocking origins: each waits for the other, and for the event loop to run.

    On the loop, the first would block it: the other origin and the loop's
    own task could never run, and the barrier would break (a failed read).
    """
    barrier = threading.Barrier(2, timeout=BOUND)
    loop_ran = threading.Event()
    threads: set[str] = set()

    def origin(name: str) -> Callable[[Any], Any]:
        def call(payload: Any) -> str:
            threads.add(threading.current_thread().name)
            barrier.wait()  # both origins at once
            if not loop_ran.wait(BOUND):  # the loop is not blocked
                raise TimeoutError("the event loop is blocked")
            return name

        return call

    async def on_the_loop() -> None:
        loop_ran.set()

    async with running({"m": migration_flag("live")}) as (server, client, _):
        migrator = (
            MigratorBuilder(client)
            .read(origin("old"), origin("new"), lambda a, b: a == b)
            .write(origin("old"), origin("new"))
            .build()  # PARALLEL is the default
        )
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(on_the_loop)
                result = await migrator.read("m", USER, Stage.OFF)
        await client.flush()
    assert (result.origin, result.value, result.error) == (Origin.NEW, "new", None)
    assert threading.current_thread().name not in threads
    (event,) = migration_ops(server.events)
    assert measurement(event, "error") is None
    assert measurement(event, "consistent")["value"] is False


async def test_an_async_origin_runs_on_the_event_loop() -> None:
    class Origin_:
        async def __call__(self, payload: Any) -> str:
            return threading.current_thread().name

    async def function(payload: Any) -> str:
        return threading.current_thread().name

    async with running({"m": migration_flag("live")}) as (_, client, _):
        migrator = (
            MigratorBuilder(client)
            .read(Origin_(), function)
            .write(Origin_(), function)
            .build()
        )
        read = await migrator.read("m", USER, Stage.OFF)
        written = await migrator.write("m", USER, Stage.OFF)
    here = threading.current_thread().name
    assert read.value == here
    assert written.authoritative.value == here
    assert written.nonauthoritative is not None
    assert written.nonauthoritative.value == here


async def test_plain_functions_are_origins_too() -> None:
    async with running({"m": migration_flag("live")}) as (_, client, _):
        migrator = (
            MigratorBuilder(client)
            .read(lambda p: ("old", p), lambda p: Result.success(("new", p)))
            .write(lambda p: None, lambda p: Result.fail("read-only"))
            .build()
        )
        read = await migrator.read("m", USER, Stage.OFF, payload=5)
        write = await migrator.write("m", USER, Stage.OFF)
    assert read.value == ("new", 5)
    assert write.authoritative.error == "read-only"
    assert write.nonauthoritative is None


# ---------------------------------------------------- measurements, sampling
async def test_latency_is_measured_on_the_monotonic_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks = iter([10.0, 10.5, 20.0, 20.25])  # old: start, end; new: start, end
    monkeypatch.setattr(migrator_module, "_now", lambda: next(ticks))
    origins = Origins()
    async with running({"m": migration_flag("shadow")}) as (server, client, _):
        await origins.migrator(client).read("m", USER, Stage.OFF)
        await client.flush()
    (event,) = migration_ops(server.events)
    assert measurement(event, "latency_ms")["values"] == {"old": 500.0, "new": 250.0}


async def test_latency_and_errors_are_not_tracked_when_turned_off() -> None:
    async def fails(payload: Any) -> Result[Any]:
        return Result.fail("no")

    async with running({"m": migration_flag("shadow")}) as (server, client, _):
        migrator = (
            MigratorBuilder(client)
            .read(fails, fails)
            .write(fails, fails)
            .track_latency(False)
            .track_errors(False)
            .build()
        )
        await migrator.read("m", USER, Stage.OFF)
        await client.flush()
    (event,) = migration_ops(server.events)
    assert [m["key"] for m in event["measurements"]] == ["invoked"]


@pytest.mark.parametrize(
    ("check_ratio", "draw", "expected"),
    [
        (None, 0.99, {"key": "consistent", "value": True, "samplingRatio": 1}),
        (1, 0.99, {"key": "consistent", "value": True, "samplingRatio": 1}),
        (0, 0.0, None),
        (4, 0.2, {"key": "consistent", "value": True, "samplingRatio": 4}),
        (4, 0.3, None),
    ],
    ids=["no-ratio", "ratio-1", "ratio-0", "ratio-4-sampled", "ratio-4-not"],
)
async def test_the_consistency_check_honours_check_ratio(
    check_ratio: int | None, draw: float, expected: JSONObject | None
) -> None:
    compared: list[tuple[Any, Any]] = []

    def compare(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return True

    fields = {} if check_ratio is None else {"migration": {"checkRatio": check_ratio}}
    origins = Origins()
    flags = {"m": migration_flag("live", **fields)}
    # The draw comes from the client's random source (Client(random=...)).
    rng = _Draws(draw)
    async with running(flags, rng=rng) as (server, client, _):
        migrator = origins.migrator(client, comparison=compare)
        await migrator.read("m", USER, Stage.OFF, payload=0)
        await client.flush()
    assert rng.values == ([] if check_ratio == 4 else [draw])  # drawn only for 4
    (event,) = migration_ops(server.events)
    assert measurement(event, "consistent") == expected
    # The comparison runs only for a sampled check, authoritative value first.
    assert compared == (
        [] if expected is None else [(("read-new", 0), ("read-old", 0))]
    )


async def test_a_blocking_clients_trackers_draw_from_its_clients_random_source(
    tmp_path: Path,
) -> None:
    """As the async client's: ``Client(random=...)``, not a bare snapshot's source."""
    import aioflags.blocking

    path = tmp_path / "flags.json"
    flag = {"key": "m", **migration_flag("live", migration={"checkRatio": 4})}
    path.write_text(json.dumps({"flags": {"m": flag}}), "utf-8")
    config = aioflags.Config(
        "k", data_system=aioflags.DataSystem.file(path), send_events=False
    )
    rng = _Draws(0.2)  # 0.2 < 1/4: sampled
    client = aioflags.blocking.Client._over(aioflags.Client(config, random=rng))

    def run() -> None:
        with client:
            stage, tracker = client.migration_variation("m", USER, Stage.OFF)
            assert stage is Stage.LIVE
            tracker.operation(Operation.READ).consistent(lambda: True)

    await anyio.to_thread.run_sync(run)  # (a blocking client: off the loop)
    assert rng.values == []  # the one draw, from the client's source


async def test_a_comparison_that_raises_records_no_consistency(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def compare(a: Any, b: Any) -> bool:
        raise RuntimeError("cannot compare")

    origins = Origins()
    async with running({"m": migration_flag("shadow")}) as (server, client, _):
        await origins.migrator(client, comparison=compare).read("m", USER, Stage.OFF)
        await client.flush()
    (event,) = migration_ops(server.events)
    assert measurement(event, "consistent") is None
    assert "consistency check for 'm' raised" in caplog.text


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [(("ok", "ok"), True), (("ok", "other"), False)],
    ids=["agree", "differ"],
)
async def test_an_async_comparison_is_awaited(
    outcomes: tuple[str, str], expected: bool
) -> None:
    """A coroutine is truthy: unawaited, values that differ would be "consistent"."""
    compared: list[tuple[Any, Any]] = []

    async def compare(a: Any, b: Any) -> bool:
        await anyio.lowlevel.checkpoint()
        compared.append((a, b))
        return bool(a == b)

    old_value, new_value = outcomes

    async def old(payload: Any) -> str:
        return old_value

    async def new(payload: Any) -> str:
        return new_value

    async with running({"m": migration_flag("shadow")}) as (server, client, _):
        migrator = MigratorBuilder(client).read(old, new, compare).write(old, new)
        await migrator.build().read("m", USER, Stage.OFF)
        await client.flush()
    (event,) = migration_ops(server.events)
    assert measurement(event, "consistent")["value"] is expected
    assert compared == [outcomes]


async def test_an_async_comparison_that_raises_records_no_consistency(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def compare(a: Any, b: Any) -> bool:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("cannot compare")

    origins = Origins()
    async with running({"m": migration_flag("shadow")}) as (server, client, _):
        await origins.migrator(client, comparison=compare).read("m", USER, Stage.OFF)
        await client.flush()
    (event,) = migration_ops(server.events)
    assert measurement(event, "consistent") is None
    assert "consistency check for 'm' raised" in caplog.text


class _NoTruthValue:
    """A comparison's result whose truth cannot be told (numpy's or pandas' ``==``)."""

    def __bool__(self) -> bool:
        raise ValueError("the truth value of an array is ambiguous")


@pytest.mark.parametrize("comparison", ["plain", "async", "tracker"])
async def test_a_comparison_result_with_no_truth_value_records_no_consistency(
    comparison: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As a comparison that raises: the read returns, the error is logged once."""

    def compare(a: Any, b: Any) -> Any:
        return _NoTruthValue()

    async def compare_async(a: Any, b: Any) -> Any:
        await anyio.lowlevel.checkpoint()
        return _NoTruthValue()

    origins = Origins()
    async with running({"m": migration_flag("shadow")}) as (server, client, _):
        if comparison == "tracker":
            _, tracker = await client.migration_variation("m", USER, Stage.OFF)
            tracker.operation(Operation.READ).invoked(Origin.OLD).invoked(Origin.NEW)
            client.track_migration_op(tracker.consistent(lambda: compare(1, 1)))
        else:
            fn = compare if comparison == "plain" else compare_async
            migrator = origins.migrator(client, comparison=fn)
            result = await migrator.read("m", USER, Stage.OFF)
            assert result.value == ("read-old", None)
        await client.flush()
    (event,) = migration_ops(server.events)
    assert measurement(event, "consistent") is None
    (logged,) = [r for r in caplog.records if "consistency check" in r.getMessage()]
    assert logged.getMessage() == (
        "The migration's consistency check for 'm' raised; no consistency is recorded"
    )
    assert logged.exc_info is not None
    assert logged.exc_info[0] is ValueError


async def test_the_tracker_refuses_an_awaitable_consistency_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OpTracker.consistent() is sync: a coroutine is logged, never taken as True."""

    async def compare() -> bool:
        return False

    async with running({"m": migration_flag("shadow")}) as (server, client, _):
        _, tracker = await client.migration_variation("m", USER, Stage.OFF)
        tracker.operation(Operation.READ).invoked(Origin.OLD).invoked(Origin.NEW)
        # The misuse under test: the type checker refuses it too.
        client.track_migration_op(tracker.consistent(compare))  # type: ignore[arg-type]
        await client.flush()
    (event,) = migration_ops(server.events)
    assert measurement(event, "consistent") is None
    assert "returned an awaitable" in caplog.text


class _AlwaysSample(random.Random):
    def randrange(self, *args: Any, **kwargs: Any) -> int:
        return 0


class _NeverSample(random.Random):
    def randrange(self, *args: Any, **kwargs: Any) -> int:
        return 1


@pytest.mark.parametrize(
    ("ratio", "rng", "expected"),
    [
        (None, random.Random(0), [None]),
        (0, _AlwaysSample(), []),
        (3, _AlwaysSample(), [3]),
        (3, _NeverSample(), []),
    ],
    ids=["none", "zero", "three-sampled", "three-not"],
)
async def test_the_event_is_sampled_as_the_flag_asks(
    ratio: int | None, rng: random.Random, expected: list[int | None]
) -> None:
    fields = {} if ratio is None else {"samplingRatio": ratio}
    origins = Origins()
    async with running({"m": migration_flag("off", **fields)}) as (server, client, _):
        recorder = client._evaluator.events.recorder  # type: ignore[union-attr]
        recorder._random = rng
        await origins.migrator(client).read("m", USER, Stage.OFF)
        await client.flush()
    assert [e.get("samplingRatio") for e in migration_ops(server.events)] == expected


# ----------------------------------------------------------- the event itself
async def test_migration_op_event_shape() -> None:
    origins = Origins()
    origins.fail.add("read-new")
    context = Context.create(
        "u2", "org", attributes={"secret": "x"}, private_attributes=["secret"]
    )
    flags = {"m": migration_flag("shadow", migration={"checkRatio": 1})}
    async with running(flags) as (server, client, _):
        await origins.migrator(client, comparison=lambda a, b: a == b).read(
            "m", context, Stage.DUALWRITE
        )
        await client.flush()
    (event,) = migration_ops(server.events)
    latency = measurement(event, "latency_ms")["values"]
    assert set(latency) == {"old", "new"}
    assert all(isinstance(ms, float) and ms >= 0 for ms in latency.values())
    assert event == {
        "kind": "migration_op",
        "creationDate": event["creationDate"],
        "operation": "read",
        "context": {
            "kind": "org",
            "key": "u2",
            "_meta": {"redactedAttributes": ["secret"]},
        },
        "evaluation": {
            "key": "m",
            "value": "shadow",
            "version": 7,
            "default": "dualwrite",
            "variation": 2,
            "reason": {"kind": "FALLTHROUGH"},
        },
        "measurements": [
            {"key": "invoked", "values": {"old": True, "new": True}},
            {"key": "latency_ms", "values": latency},
            {"key": "error", "values": {"new": True}},
        ],
    }
    assert isinstance(event["creationDate"], int)


async def test_a_migration_op_makes_no_index_event_of_its_own() -> None:
    async with running({"m": migration_flag("off")}) as (server, client, _):
        _, tracker = await client.migration_variation("m", USER, Stage.OFF)
        await client.flush()
        server.clear_events()
        client._evaluator.events.recorder.reset_context_keys()  # type: ignore[union-attr]
        client.track_migration_op(tracker.operation(Operation.READ).invoked(Origin.OLD))
        await client.flush()
    assert [e["kind"] for e in server.events] == ["migration_op"]


async def test_a_migration_op_for_a_context_seen_counts_as_deduplicated() -> None:
    """As LaunchDarkly's diagnostics count it (identify events too)."""
    async with running({"m": migration_flag("off")}) as (_, client, _):
        recorder = client._evaluator.events.recorder  # type: ignore[union-attr]
        _, tracker = await client.migration_variation("m", USER, Stage.OFF)
        before = recorder.deduplicated  # the evaluation noticed USER
        client.track_migration_op(tracker.operation(Operation.READ).invoked(Origin.OLD))
        assert recorder.deduplicated == before + 1
        client.identify(USER)
        assert recorder.deduplicated == before + 2
        recorder.reset_context_keys()
        client.identify(USER)  # not seen since the reset
        assert recorder.deduplicated == before + 2


# ----------------------------------------------------------------- refusals
def _no_latency_new(t: Any) -> Any:
    return (
        t.operation(Operation.READ)
        .invoked(Origin.OLD)
        .latency(Origin.NEW, timedelta(milliseconds=1))
    )


@pytest.mark.parametrize(
    ("fill", "reason"),
    [
        (lambda t: t.invoked(Origin.OLD), "operation not provided"),
        (lambda t: t.operation(Operation.READ), "no origins were invoked"),
        (
            _no_latency_new,
            "provided latency for origin 'new' without recording invocation",
        ),
        (
            lambda t: t.operation(Operation.READ).invoked(Origin.NEW).error(Origin.OLD),
            "provided error for origin 'old' without recording invocation",
        ),
        (
            lambda t: (
                t.operation(Operation.READ).invoked(Origin.NEW).consistent(lambda: True)
            ),
            "provided consistency without recording both invocations",
        ),
    ],
    ids=["no-operation", "nothing-invoked", "latency", "error", "consistency"],
)
async def test_a_tracker_lacking_what_an_event_needs_is_refused_with_a_reason(
    fill: Callable[[Any], Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running({"m": migration_flag("off")}) as (server, client, _):
        _, tracker = await client.migration_variation("m", USER, Stage.OFF)
        with caplog.at_level(logging.ERROR, "aioflags.migrations"):
            client.track_migration_op(fill(tracker))
        await client.flush()
    assert migration_ops(server.events) == []
    assert f"{reason}; no event will be emitted" in caplog.text


@pytest.mark.parametrize(
    ("duration", "written"),
    [
        (0.1, "float 0.1: timedelta(seconds=0.1)"),
        (2, "int 2: timedelta(seconds=2)"),
        ("100ms", "str '100ms'"),
        (None, "NoneType None"),
    ],
)
async def test_a_latency_that_is_not_a_timedelta_is_refused_at_the_call(
    duration: object, written: str
) -> None:
    """Issue 77: ``tracker.latency(origin, 0.1)`` raised an AttributeError from inside."""
    async with running({"m": migration_flag("off")}) as (server, client, _):
        _, tracker = await client.migration_variation("m", USER, Stage.OFF)
        with pytest.raises(TypeError) as info:
            tracker.latency(Origin.OLD, duration)  # type: ignore[arg-type]
        assert str(info.value) == (
            "OpTracker.latency(origin, duration) takes the duration as a "
            f"datetime.timedelta, got {written}"
        )
        # A timedelta, as LaunchDarkly's takes it, is recorded in milliseconds.
        tracker.operation(Operation.READ).invoked(Origin.OLD)
        client.track_migration_op(tracker.latency(Origin.OLD, timedelta(seconds=0.1)))
        await client.flush()
    (event,) = migration_ops(server.events)
    assert measurement(event, "latency_ms")["values"] == {"old": 100.0}


async def test_an_invalid_context_or_key_or_tracker_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running({"m": migration_flag("off")}) as (server, client, _):
        _, bad_context = await client.migration_variation(
            "m", Context.create(""), Stage.OFF
        )
        _, no_key = await client.migration_variation("", USER, Stage.OFF)
        client.track_migration_op(
            bad_context.operation(Operation.READ).invoked(Origin.OLD)
        )
        client.track_migration_op(no_key.operation(Operation.READ).invoked(Origin.OLD))
        client.track_migration_op("not a tracker")  # type: ignore[arg-type]
        await client.flush()
    assert migration_ops(server.events) == []
    assert "provided context was invalid" in caplog.text
    assert "migration operation cannot contain an empty key" in caplog.text
    assert "takes the OpTracker that migration_variation() returned" in caplog.text


@pytest.mark.parametrize("where", ["tracker", "recorder"])
async def test_track_migration_op_never_raises(
    where: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug behind it is logged and the event dropped, as for track()."""

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    async with running({"m": migration_flag("off")}) as (server, client, _):
        _, tracker = await client.migration_variation("m", USER, Stage.OFF)
        if where == "tracker":
            monkeypatch.setattr(migration_module.OpTracker, "_build", broken)
        else:
            recorder = client._evaluator.events.recorder  # type: ignore[union-attr]
            monkeypatch.setattr(type(recorder), "migration_op", broken)
        client.track_migration_op(tracker.operation(Operation.READ).invoked(Origin.OLD))
        await client.flush()
    assert migration_ops(server.events) == []
    assert "track_migration_op() failed" in caplog.text
    assert "RuntimeError: a bug" in caplog.text


async def test_nothing_is_sent_while_events_are_off() -> None:
    origins = Origins()
    flags = {"m": migration_flag("shadow")}
    async with running(flags, send_events=False) as (server, client, _):
        result = await origins.migrator(client).read("m", USER, Stage.OFF)
        await client.flush()
    assert result.is_success()
    assert server.events == []


# ------------------------------------------------------------------ builder
@pytest.mark.parametrize(
    ("order", "hint"),
    [
        ("serial", "; for 'serial', pass ExecutionOrder.SERIAL"),
        ("bogus", "; ExecutionOrder.from_str(name) parses a name"),
        (3, "; ExecutionOrder.from_str(name) parses a name"),
        (None, "; ExecutionOrder.from_str(name) parses a name"),
    ],
    ids=["a-name", "bogus", "int", "none"],
)
async def test_read_execution_order_takes_only_an_execution_order(
    order: object, hint: str
) -> None:
    """LaunchDarkly's builder ignores these and reads in PARALLEL, silently."""
    async with running({}) as (_, client, _):
        builder = MigratorBuilder(client)
        with pytest.raises(aioflags.ConfigurationError) as raised:
            builder.read_execution_order(order)  # type: ignore[arg-type]
    assert str(raised.value) == (
        "MigratorBuilder.read_execution_order() takes an ExecutionOrder "
        "(ExecutionOrder.SERIAL, ExecutionOrder.RANDOM, ExecutionOrder.PARALLEL), "
        f"got {order!r}{hint}"
    )


async def test_the_builder_takes_only_a_client() -> None:
    with pytest.raises(aioflags.ConfigurationError, match=r"takes an aioflags\.Client"):
        MigratorBuilder(object())  # type: ignore[call-overload]


# ---------------------------------------------------------- FlagBuilder
async def test_flag_builder_makes_migration_flags() -> None:
    built = FlagBuilder("m").migration(Stage.SHADOW).build()
    assert built["variations"] == STAGES
    assert built["fallthrough"] == {"variation": STAGES.index("shadow")}
    assert built["offVariation"] == 0
    assert "migration" not in built
    assert "samplingRatio" not in built
    ratios = FlagBuilder("m").migration("live").migration_check_ratio(0)
    built = ratios.sampling_ratio(3).build()
    assert (built["migration"], built["samplingRatio"]) == ({"checkRatio": 0}, 3)
    cleared = ratios.copy().migration_check_ratio(None).sampling_ratio(None).build()
    assert "migration" not in cleared
    assert "samplingRatio" not in cleared


@pytest.mark.parametrize("ratio", [-1, 1.5, True, "2"])
async def test_flag_builder_refuses_a_ratio_that_is_not_a_count(ratio: Any) -> None:
    with pytest.raises(ValueError, match=r"check_ratio\(\) takes an int of 0 or more"):
        FlagBuilder("m").migration_check_ratio(ratio)
    with pytest.raises(
        ValueError, match=r"sampling_ratio\(\) takes an int of 0 or more"
    ):
        FlagBuilder("m").sampling_ratio(ratio)


async def test_a_built_migration_flag_drives_a_migrator() -> None:
    """Targets by stage name; the check ratio and the sampling ratio as set."""
    flag = (
        FlagBuilder("m")
        .migration(Stage.OFF)
        .target("live", "u1")
        .migration_check_ratio(0)  # never compare
        .sampling_ratio(1)
    )
    unsampled = FlagBuilder("quiet").migration("shadow").sampling_ratio(0)
    compared: list[Any] = []

    def compare(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return True

    origins = Origins()
    flags = {"m": flag.build(), "quiet": unsampled.build()}
    async with running(flags) as (server, client, _):
        migrator = origins.migrator(client, comparison=compare)
        result = await migrator.read("m", USER, Stage.COMPLETE)
        other = await migrator.read("m", Context.create("u2"), Stage.COMPLETE)
        await migrator.read("quiet", USER, Stage.OFF)  # shadow: both, no event
        await client.flush()
    assert (result.origin, other.origin) == (Origin.NEW, Origin.OLD)  # live, off
    # Only "quiet" (no checkRatio: every read) compared its values.
    assert compared == [(("read-old", None), ("read-new", None))]
    live, off = migration_ops(server.events)
    assert live["evaluation"]["value"] == "live"
    assert measurement(live, "invoked")["values"] == {"old": True, "new": True}
    assert measurement(live, "consistent") is None
    assert off["evaluation"]["value"] == "off"
    assert origins.calls[-2:] == ["read-old", "read-new"]  # "quiet" was read


async def test_build_without_read_or_write_raises_configuration_error() -> None:
    async with running({}) as (_, client, _):
        origins = Origins()
        with pytest.raises(aioflags.ConfigurationError, match="read configuration"):
            MigratorBuilder(client).write(
                origins.origin("a"), origins.origin("b")
            ).build()
        with pytest.raises(aioflags.ConfigurationError, match="write configuration"):
            MigratorBuilder(client).read(
                origins.origin("a"), origins.origin("b")
            ).build()


async def test_the_public_module_names_its_own() -> None:
    import aioflags.migrations as public

    assert list(public.__all__) == sorted(public.__all__)
    for name in public.__all__:
        obj = getattr(public, name)
        if isinstance(obj, type):
            assert obj.__module__ == "aioflags.migrations", name
            assert obj.__doc__, name


# ------------------------------------------------- LaunchDarkly's names, ported
@pytest.mark.parametrize(
    "text", [*STAGES, "LIVE", "bogus", "", "serial", "parallel", "random"]
)
async def test_from_str_answers_as_launchdarkly_does(text: str) -> None:
    from ldclient.migrations import ExecutionOrder as LDOrder
    from ldclient.migrations import Stage as LDStage

    stage, ld_stage = Stage.from_str(text), LDStage.from_str(text)
    assert (stage and stage.value) == (ld_stage and ld_stage.value)
    order, ld_order = ExecutionOrder.from_str(text), LDOrder.from_str(text)
    assert (order and order.value) == (ld_order and ld_order.value)


async def test_from_str_gives_none_for_an_unknown_name() -> None:
    assert Stage.from_str("shadow") is Stage.SHADOW
    assert Stage.from_str("Shadow") is None
    assert ExecutionOrder.from_str("parallel") is ExecutionOrder.PARALLEL
    assert ExecutionOrder.from_str("concurrent") is None


async def test_results_are_made_positionally_as_launchdarkly_makes_them() -> None:
    boom = ValueError("x")
    assert Result(None, "failed", boom) == Result.fail("failed", boom)
    assert Result(5) == Result.success(5)
    made = OperationResult(Origin.NEW, Result("v", None, None))
    assert made == OperationResult(origin=Origin.NEW, result=Result.success("v"))
    assert (made.origin, made.value, made.is_success()) == (Origin.NEW, "v", True)


async def test_launchdarkly_async_names_are_aliases() -> None:
    """Code written for LaunchDarkly's async client imports these names."""
    import ldclient.migrations

    import aioflags.migrations as public

    assert public.AsyncMigratorBuilder is MigratorBuilder
    assert public.AsyncMigrator is Migrator
    assert public.BlockingMigrator is BlockingMigrator
    # A type alias of the same (at run time, the alias's text).
    assert vars(public)["AsyncMigratorFn"] == "MigratorFn"
    # Every name LaunchDarkly's module exports, but for its config holders
    # (MigratorBuilder.read/.write take their fields instead).
    theirs = set(ldclient.migrations.__all__)
    assert theirs - set(public.__all__) == {"MigrationConfig", "AsyncMigrationConfig"}


# ------------------------------------------------------------------- the docs
def _fastapi_sample() -> str:
    from tests.modules import ROOT

    page = (ROOT / "docs" / "migrations.md").read_text()
    (sample,) = [
        block
        for block in page.split("```python\n")[1:]
        if "FastAPI(lifespan=lifespan)" in block
    ]
    return sample.split("```")[0]


@pytest.mark.parametrize("stage", ["shadow", "live", "complete"])
async def test_the_fastapi_example_answers_404_for_a_missing_order(stage: str) -> None:
    """docs/migrations.md's service, its origins on in-memory stores: no 200 null."""
    from types import SimpleNamespace

    from fastapi import HTTPException

    rows = {1: {"id": 1, "total": 5}}

    class Pool:
        async def fetchrow(self, query: str, order_id: int) -> Any:
            return rows.get(order_id)

    class Orders:
        async def find_one(self, query: JSONObject, projection: JSONObject) -> Any:
            return rows.get(query["_id"])

    namespace: dict[str, Any] = {
        "pg_pool": Pool(),
        "docs": SimpleNamespace(orders=Orders()),
        "pg_write": None,
        "docs_write": None,
        "sdk_key": "sdk-key",
    }
    exec(_fastapi_sample(), namespace)
    flags = {"orders-to-documents": migration_flag(stage)}
    async with running(flags) as (_, client, _):
        orders = (
            MigratorBuilder(client)
            .read(namespace["pg_read"], namespace["docs_read"])
            .write(namespace["pg_read"], namespace["docs_read"])
            .build()
        )
        request = SimpleNamespace(
            headers={"x-user-id": "u1"},
            app=SimpleNamespace(state=SimpleNamespace(orders=orders)),
        )
        get_order = namespace["get_order"]
        assert await get_order(1, request) == {"id": 1, "total": 5}
        with pytest.raises(HTTPException) as raised:
            await get_order(2, request)
    assert raised.value.status_code == 404
