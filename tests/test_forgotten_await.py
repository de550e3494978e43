"""A forgotten ``await`` is loud where it happens (issue 95: rows 28, 53, 59).

``if client.bool_variation(...)`` without ``await`` tested a coroutine
object, always true (``string_variation(...) == "x"`` always false);
``migrator.read(...).is_success()`` raised ``AttributeError: 'coroutine'
object has no attribute 'is_success'``. What the typed methods, the
details, ``all_flags_state`` and the migrator's methods return now refuses
to be used as a value, with a ``TypeError`` that says to await it, and is
a coroutine everywhere one is taken (``asyncio.create_task``, ``gather``,
anyio's ``start_soon`` on asyncio and trio). ``variation`` stays a
coroutine: it is what the speed floors measure, and an awaitable of our
own costs an ``await`` more (see ``aioflags/_client/_awaiting.py``). Row 59: an origin that returns a bare
``None`` (a success) is logged once per origin.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import types
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from aioflags import Client, Config, Context
from aioflags._client._awaiting import REFUSED, Pending, answered
from aioflags.migrations import MigratorBuilder, Result, Stage
from aioflags.testing import FlagData

USER = Context.create("u1")

#: Each evaluation method, with a default of its type.
METHODS: list[tuple[str, object]] = [
    ("variation", False),
    ("variation_detail", False),
    ("bool_variation", False),
    ("int_variation", 0),
    ("float_variation", 0.0),
    ("string_variation", ""),
    ("json_variation", None),
    ("bool_variation_detail", False),
    ("int_variation_detail", 0),
    ("float_variation_detail", 0.0),
    ("string_variation_detail", ""),
    ("json_variation_detail", None),
]


@asynccontextmanager
async def started(**flags: object) -> AsyncIterator[Client]:
    """A client READY on in-memory flags (each served to everyone)."""
    data = FlagData()
    for key, value in flags.items():
        data.set_value(key, value)
    async with Client(
        Config(data_system=data.data_system(), send_events=False)
    ) as client:
        yield client


class Gate:
    """An evaluation gate every evaluation waits at (as big segments' does): the awaited path."""

    always = True

    def __init__(self, client: Client) -> None:
        self._client = client
        self.passed = 0

    def passes(self, key: str) -> bool:
        return False

    async def evaluate(
        self, key: str | None, context: Context | None, answer: Callable[[Any], Any]
    ) -> Any:
        await anyio.lowlevel.checkpoint()  # (it suspends, as a store read does)
        self.passed += 1
        return answer(self._client._evaluator.snapshot())


def branch(value: object) -> str:
    """The mistake, as written: ``if client.bool_variation(...):``."""
    if value:
        return "on"
    return "off"  # pragma: no cover - the tests' values refuse first


@pytest.mark.parametrize(
    ("key", "default", "answer"),
    [("on", False, True), ("off", True, False), ("missing", "x", "x")],
    ids=["true", "false", "a-default-of-another-type"],
)
@pytest.mark.asyncio
async def test_row28_an_unawaited_bool_variation_refuses_to_be_a_boolean(
    key: str, default: Any, answer: object
) -> None:
    async with started(on=True, off=False) as client:
        pending = client.bool_variation(key, USER, default)
        with pytest.raises(TypeError) as raised:
            bool(pending)
        message = str(raised.value)
        assert "use `await client.bool_variation(...)`" in message
        assert "\n" not in message  # one line
        with pytest.raises(TypeError, match="was not awaited"):
            branch(pending)
        assert await pending == answer  # (awaited after all: it answers)


@pytest.mark.asyncio
async def test_row28_an_unawaited_evaluation_behind_a_gate_refuses_too() -> None:
    """The awaited path (a gate: a store's reads, big segments' memberships)."""
    async with started(flag=True) as client:
        gate = Gate(client)
        client._evaluator.use_gate(gate)  # type: ignore[arg-type]  # (a duck gate)
        with pytest.raises(TypeError, match=r"await client\.bool_variation\(\.\.\.\)"):
            bool(client.bool_variation("flag", USER, False))
        gc.collect()  # its coroutine was closed: no "never awaited" warning
        assert gate.passed == 0
        assert await client.bool_variation("flag", USER, False) is True
        assert await client.bool_variation("flag", USER, False) is True
        assert gate.passed == 2


@pytest.mark.parametrize(("method", "default"), METHODS, ids=[m for m, _ in METHODS])
@pytest.mark.asyncio
async def test_row28_awaited_evaluations_answer_as_before(
    method: str, default: object
) -> None:
    async with started(flag=True) as client:
        answer = await getattr(client, method)("flag", USER, default)
        snapshot = getattr(client.snapshot(), method)("flag", USER, default)
        assert answer == snapshot


@pytest.mark.asyncio
async def test_row28_what_an_evaluation_returns_is_a_coroutine_where_one_is_taken() -> (
    None
):
    """``create_task``, ``gather``, anyio's ``start_soon`` and ``isinstance`` take it."""
    async with started(flag=True, name="Ann") as client:
        pending = client.bool_variation("flag", USER, False)
        assert isinstance(pending, Coroutine)
        assert asyncio.iscoroutine(pending)
        assert "client.bool_variation" in repr(pending)
        assert await asyncio.create_task(pending) is True  # noqa: TID251 - what is proven
        both = await asyncio.gather(  # noqa: TID251 - what is proven
            client.bool_variation("flag", USER, False),
            client.string_variation("name", USER, ""),
        )
        assert both == [True, "Ann"]
        got: list[object] = []

        async def keep(value: Coroutine[Any, Any, object]) -> None:
            got.append(await value)

        async with anyio.create_task_group() as tg:
            tg.start_soon(client.bool_variation, "flag", USER, False)
            tg.start_soon(keep, client.int_variation("missing", USER, 7))
        assert got == [7]
        # Awaited twice, it answers twice (an answer held, not a coroutine run).
        again = client.bool_variation("flag", USER, False)
        assert await again is True and await again is True


@pytest.mark.asyncio
async def test_row28_a_pending_coroutine_is_driven_by_send_throw_and_close() -> None:
    """What a task (or an event loop of another library) does with a coroutine."""

    async def answer() -> int:
        await anyio.lowlevel.checkpoint()
        return 42

    pending = Pending(answer(), "client.x")
    assert "client.x(...) not awaited" in repr(pending)
    assert await asyncio.create_task(pending) == 42  # noqa: TID251 - what is proven

    thrown = Pending(answer(), "client.x")
    thrown.send(None)  # suspended at its checkpoint
    with pytest.raises(KeyError):
        thrown.throw(KeyError("k"))

    closed = Pending(answer(), "client.x")
    closed.close()
    with pytest.raises(RuntimeError, match="cannot reuse"):
        await closed

    done = answered("client.x", 1)
    with pytest.raises(StopIteration) as stopped:
        done.send(None)
    assert stopped.value.value == 1
    with pytest.raises(ValueError, match="x"):
        done.throw(ValueError("x"))
    with pytest.raises(ValueError, match=r"^$"):
        done.throw(ValueError)
    done.close()
    assert await done == 1
    assert "client.x" in repr(done)


#: The typed methods but ``bool_variation`` (above), each with the flag's
#: value and a default of its type.
TYPED: list[tuple[str, object, object]] = [
    ("int_variation", 3, 0),
    ("float_variation", 2.5, 0.0),
    ("string_variation", "green", ""),
    ("json_variation", {"a": 1}, None),
]
DETAILS = [m for m, _ in METHODS if m.endswith("_detail")]
DEFAULTS = dict(METHODS)


def refused(value: Any, call: str) -> None:
    """``value`` refuses each use of a value, with one line naming the fix."""
    fix = f"use `await client.{call}(...)`"
    with pytest.raises(TypeError) as raised:
        branch(value)
    assert fix in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(TypeError, match=fix.replace("(", r"\(").replace(")", r"\)")):
        _ = value == "green"
    with pytest.raises(TypeError, match="was not awaited"):
        _ = value != 3
    with pytest.raises(TypeError, match="was not awaited"):
        _ = value < 3
    with pytest.raises(TypeError, match="was not awaited"):
        _ = value >= 2.5


@pytest.mark.parametrize(
    ("method", "value", "default"), TYPED, ids=[m for m, *_ in TYPED]
)
@pytest.mark.asyncio
async def test_row28_an_unawaited_typed_variation_refuses_to_be_a_value(
    method: str, value: object, default: object
) -> None:
    """``if client.string_variation(...) == "x"`` was silently False."""
    async with started(flag=value) as client:
        pending = getattr(client, method)("flag", USER, default)
        refused(pending, method)
        assert await pending == value  # (awaited after all: it answers)


@pytest.mark.parametrize("method", DETAILS)
@pytest.mark.asyncio
async def test_row28_an_unawaited_detail_refuses_to_be_a_detail(method: str) -> None:
    """``client.bool_variation_detail(...).value`` gave the awaitable, or an AttributeError."""
    async with started(flag=True) as client:
        pending = getattr(client, method)("flag", USER, DEFAULTS[method])
        refused(pending, method)
        for name in ("value", "reason", "variation_index", "is_default_value"):
            with pytest.raises(TypeError, match=f"await client\\.{method}"):
                getattr(pending, name)
        assert not hasattr(pending, "cr_frame")  # (a task runner's probe: no error)
        detail = await pending
        assert detail == getattr(client.snapshot(), method)(
            "flag", USER, DEFAULTS[method]
        )


@pytest.mark.asyncio
async def test_row28_an_unawaited_all_flags_state_refuses_to_be_a_state() -> None:
    async with started(flag=True) as client:
        for name in ("to_json", "valid", "get_flag_value"):
            with pytest.raises(TypeError, match=r"await client\.all_flags_state"):
                getattr(client.all_flags_state(USER), name)
        with pytest.raises(TypeError, match=r"await client\.all_flags_state"):
            branch(client.all_flags_state(USER))
        # (each was closed as it refused: no "never awaited" warning)
        assert (await client.all_flags_state(USER)).get_flag_value("flag") is True


def test_row28_an_answer_refuses_each_name_of_what_it_stands_for() -> None:
    """Properties, not ``__getattr__`` (which slows each read): each name is one."""
    done = answered("client.x", 1)
    for name in sorted(REFUSED):
        with pytest.raises(TypeError, match=r"await client\.x"):
            getattr(done, name)
    with pytest.raises(AttributeError, match="no attribute 'cr_frame'"):
        _ = done.cr_frame  # type: ignore[attr-defined]


@pytest.mark.slow  # (a client started for each method)
@pytest.mark.parametrize(
    ("method", "default"), METHODS[1:], ids=[m for m, _ in METHODS[1:]]
)
@pytest.mark.asyncio
async def test_row28_behind_a_gate_each_method_answers_and_refuses_as_in_memory(
    method: str, default: object
) -> None:
    """The awaited path (a store's reads, big segments): a coroutine behind the name.

    (``variation`` stays a coroutine: the last test.)
    """
    async with started(flag=True) as client:
        gate = Gate(client)
        client._evaluator.use_gate(gate)  # type: ignore[arg-type]  # (a duck gate)
        expected = getattr(client.snapshot(), method)("flag", USER, default)
        with pytest.raises(TypeError, match=f"await client\\.{method}"):
            branch(getattr(client, method)("flag", USER, default))
        with pytest.raises(TypeError, match=f"await client\\.{method}"):
            _ = getattr(client, method)("flag", USER, default) == expected
        # (closed as they refused: no "never awaited" warning)
        assert gate.passed == 0
        assert await getattr(client, method)("flag", USER, default) == expected
        assert gate.passed == 1


@pytest.mark.asyncio
async def test_unawaited_results_compare_with_each_other_as_objects_do() -> None:
    """A list or a set of them works: only a comparison with a value is refused."""
    async with started(flag=True, name="Ann") as client:
        first = client.string_variation("name", USER, "")
        second = client.int_variation("flag", USER, 0)
        held = [first, second]
        assert first == first and first != second and second in held  # type: ignore[comparison-overlap]
        assert len({first, second, first}) == 2
        coroutine = client.variation("flag", USER, False)
        assert first != coroutine  # (a native coroutine: an awaitable too)
        coroutine.close()
        held.remove(second)
        assert held == [first]
        assert [await first, await second] == ["Ann", 0]


@pytest.mark.asyncio
async def test_awaited_results_run_in_gather_tasks_and_task_groups() -> None:
    async with started(flag=True, name="Ann", n=3) as client:
        shared = client.string_variation("name", USER, "")
        got = await asyncio.gather(  # noqa: TID251 - what is proven
            shared,
            shared,  # (the same awaitable twice: gather awaits it once)
            client.int_variation("n", USER, 0),
            client.variation_detail("flag", USER, False),
            client.json_variation("missing", USER, {"d": 1}),
        )
        assert got[:3] == ["Ann", "Ann", 3] and got[4] == {"d": 1}
        assert got[3].value is True
        task = asyncio.create_task(client.float_variation("n", USER, 0.0))  # noqa: TID251 - what is proven
        assert await task == 3.0
        kept: list[object] = []

        async def keep(value: Coroutine[Any, Any, object]) -> None:
            kept.append(await value)

        async with anyio.create_task_group() as tg:
            tg.start_soon(client.string_variation, "name", USER, "")
            tg.start_soon(keep, client.string_variation_detail("name", USER, ""))
            tg.start_soon(keep, client.all_flags_state(USER))
        assert kept[0].value == "Ann"  # type: ignore[attr-defined]
        assert kept[1].get_flag_value("n") == 3  # type: ignore[attr-defined]


def test_row28_an_unawaited_evaluation_refuses_under_trio_and_awaited_answers() -> None:
    async def main() -> dict[str, Any]:
        async with started(flag=True, name="Ann") as client:
            with pytest.raises(TypeError, match=r"await client\.string_variation"):
                _ = client.string_variation("name", USER, "") == "Ann"  # type: ignore[comparison-overlap]
            kept: dict[str, Any] = {}

            async def keep(name: str, value: Coroutine[Any, Any, object]) -> None:
                kept[name] = await value

            async with anyio.create_task_group() as tg:
                tg.start_soon(client.string_variation, "name", USER, "")
                tg.start_soon(client.bool_variation_detail, "flag", USER, False)
                tg.start_soon(keep, "int", client.int_variation("missing", USER, 7))
                tg.start_soon(keep, "state", client.all_flags_state(USER))
            kept["detail"] = await client.variation_detail("flag", USER, False)
            return kept

    kept = anyio.run(main, backend="trio")
    assert kept["int"] == 7
    assert kept["state"].get_flag_value("name") == "Ann"
    assert kept["detail"].value is True


@pytest.mark.asyncio
async def test_variation_stays_a_native_coroutine_for_the_speed_floors() -> None:
    """Pinned: ``client.variation`` is what eval_window's floors measure (docs/benchmarks.md).

    An awaitable of aioflags' own would cost it ~1,400 CPU instructions an
    evaluation: changing that is a decision to make with the floors'
    figures, not by accident.
    """
    async with started(flag=True) as client:
        pending = client.variation("flag", USER, False)
        assert type(pending) is types.CoroutineType
        assert await pending is True


def migrator(client: Client, value: object = "old") -> Any:
    async def read(payload: object) -> object:
        return value

    async def write(payload: object) -> object:
        return Result.success(payload)

    return MigratorBuilder(client).read(read, read).write(write, write).build()


@pytest.mark.parametrize("name", ["is_success", "value", "error", "origin"])
@pytest.mark.asyncio
async def test_row53_an_unawaited_migration_read_refuses_to_be_a_result(
    name: str,
) -> None:
    async with started() as client:
        pending = migrator(client).read("m", USER, Stage.OFF)
        with pytest.raises(TypeError) as raised:
            getattr(pending, name)
        assert "use `await migrator.read(...)`" in str(raised.value)
        with pytest.raises(TypeError, match=r"await migrator\.read"):
            bool(pending)
        gc.collect()  # closed as it refused: no "never awaited" warning


@pytest.mark.asyncio
async def test_row53_an_unawaited_migration_write_refuses_too_and_awaited_both_work() -> (
    None
):
    async with started() as client:
        moving = migrator(client)
        with pytest.raises(TypeError, match=r"await migrator\.write"):
            _ = moving.write("m", USER, Stage.OFF, payload=1).authoritative
        probed = moving.read("m", USER, Stage.OFF)
        with pytest.raises(AttributeError, match="no attribute 'something'"):
            _ = probed.something
        assert not hasattr(probed, "something")
        assert (await probed).is_success()  # (a probe leaves it to be awaited)
        gc.collect()
        read = await moving.read("m", USER, Stage.OFF)
        assert read.is_success() and read.value == "old"
        written = await moving.write("m", USER, Stage.OFF, payload=1)
        assert written.authoritative.value == 1
        pending = moving.read("m", USER, Stage.OFF)
        assert isinstance(pending, Pending)
        assert (await pending).is_success()


@pytest.mark.asyncio
async def test_row59_an_origin_returning_none_is_logged_once_per_origin(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A success with the value None, as documented; maybe a miss meant as a failure."""
    caplog.set_level(logging.WARNING, logger="aioflags.migrations")
    data = FlagData()
    data.update(data.flag("orders").migration(Stage.SHADOW))
    config = Config(data_system=data.data_system(), send_events=False)
    async with Client(config) as client:
        moving = migrator(client, value=None)
        for _ in range(3):
            result = await moving.read("orders", USER, Stage.OFF)
            assert result.is_success() and result.value is None
    lines = [r for r in caplog.records if r.name == "aioflags.migrations"]
    assert len(lines) == 2, [r.getMessage() for r in lines]  # old and new, once each
    messages = sorted(r.getMessage() for r in lines)
    assert all(r.levelno == logging.WARNING for r in lines)
    assert all("'orders'" in m and "Result.success(None)" in m for m in messages)
    assert "the new origin's read" in messages[0]
    assert "the old origin's read" in messages[1]
    assert all("\n" not in m for m in messages)


@pytest.mark.asyncio
async def test_row59_an_explicit_success_of_none_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aioflags.migrations")
    async with started() as client:
        moving = migrator(client, value=Result.success(None))
        result = await moving.read("m", USER, Stage.OFF)
        assert result.is_success() and result.value is None
    assert not [r for r in caplog.records if r.name == "aioflags.migrations"]
