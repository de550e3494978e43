"""A hostile pass over guarded rollouts (issue 98): the gaps found, each pinned by a test.

Traffic is synthetic and seeded; time is the guards' fake clock; a pin
comes from a treatment that fails every request, so it is decided at the
first look once the low-traffic floor is lowered (the ``quick`` fixture:
``_stats.MIN_PER_ARM``, 1,000 requests per arm, made 50).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import random
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

import aioflags
from aioflags import Context, Guard
from aioflags._datasystem._store import Store, snapshot_from_data
from aioflags._evaluation._results import Reason
from aioflags._guards import _stats, _watch
from aioflags._guards._watch import GuardRun
from aioflags._testing._coverage import FlagCoverage
from aioflags.guards import errors, metric
from aioflags.testing import FlagData, in_segment
from tests.analytics import by_kind, flag, running


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guard decides from 50 requests per arm (the floor is 1,000): tests stay fast."""
    monkeypatch.setattr(_stats, "MIN_PER_ARM", 50)


class Clock:
    """The guards' clock: moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _rollout(data: FlagData, key: str = "f") -> None:
    data.update(data.flag(key).boolean().fallthrough_rollout({True: 50, False: 50}))


def _client(data: FlagData, *guards: Guard, **options: Any) -> aioflags.Client:
    return aioflags.Client(
        aioflags.Config(data_system=data.data_system(), guards=guards, **options)
    )


def _pin_guard(flag: str = "f") -> Guard:
    return Guard(flag, control=False, metrics=[errors()], action="pin")


async def _pin(client: aioflags.Client, key: str = "f") -> None:
    """Requests whose treatment (True) always fails, until the guard on ``key`` pins."""
    clock = Clock()
    client.guards.clock = clock
    for i in range(1000):
        with contextlib.suppress(LookupError):
            async with client.guards.request():
                value = await client.bool_variation(key, Context.create(f"p{i}"), False)
                clock.now += 0.01
                if value:
                    raise LookupError("the treatment failed")
        if client.guards.status[key].state == "pinned":
            return
    raise AssertionError(f"the guard on {key!r} never pinned")


# ------------------------------------------------------------------ G-hash


def test_issue98_G_hash_a_guard_with_a_dict_or_list_control_hashes() -> None:
    one = Guard("f", control={"theme": ["dark", {"contrast": True}]})
    same = Guard("f", control={"theme": ["dark", {"contrast": True}]})
    assert one == same and hash(one) == hash(same)
    assert len({one, same, Guard("f", control=[1, 2])}) == 2
    # Config holds guards and is hashable: it stays so.
    config = aioflags.Config("sdk-key", guards=[one])
    assert hash(config) == hash(aioflags.Config("sdk-key", guards=[same]))


def test_issue98_G_hash_control_true_is_not_control_one() -> None:
    # As JSON (and the guard, which serves another variation) sees them.
    assert Guard("f", control=True) != Guard("f", control=1)
    assert Guard("f", control=1) == Guard("f", control=1.0)
    assert hash(Guard("f", control=1)) == hash(Guard("f", control=1.0))


# --------------------------------------------------------------- G-threads


@pytest.mark.slow  # (the fixed code waits out the barrier's timeout)
@pytest.mark.asyncio
async def test_issue98_G_threads_two_threads_making_a_head_share_one_watch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = FlagData()
    _rollout(data)
    async with _client(data, _pin_guard()) as client:
        store = client._evaluator.store
        assert isinstance(store, Store) and store.guarded is not None
        flag = store.data.flag("f")
    run = GuardRun(_pin_guard(), contextvars.ContextVar("scope", default=None), print)
    # Both threads check the new flag at once: each, about to make the
    # version's watch, waits for the other there. With the lock the second
    # waits for the first instead, the barrier times out, and the second
    # finds the first's watch.
    barrier = threading.Barrier(2, timeout=1.0)
    made = _watch.Watch

    def meet(*args: Any) -> _watch.Watch:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return made(*args)

    monkeypatch.setattr(_watch, "Watch", meet)
    got: list[Any] = []

    def make() -> None:
        watched = run.watch(flag)
        assert watched is not None
        got.append(watched[0])

    async with anyio.create_task_group() as tg:  # (two worker threads)
        for _ in range(2):
            tg.start_soon(anyio.to_thread.run_sync, make)
    assert len(got) == 2
    assert got[0] is got[1] is run.current


# --------------------------------------------------------------- G-careful


@pytest.mark.asyncio
@pytest.mark.usefixtures("quick")
async def test_issue98_G_careful_a_prerequisite_chain_sees_the_pin() -> None:
    data = FlagData()
    _rollout(data)
    # "top" -> "mid" -> "f": a chain, so "top" is evaluated on the careful
    # path, which walks "mid" and "f" with a state of its own.
    data.update(data.flag("mid").boolean().prerequisite("f", True).fallthrough(True))
    data.update(data.flag("top").boolean().prerequisite("mid", True).fallthrough(True))
    async with _client(data, _pin_guard()) as client:
        before = {
            await client.bool_variation("top", Context.create(f"x{i}"), False)
            for i in range(40)
        }
        assert before == {True, False}  # (the rollout reaches "top")
        await _pin(client)
        for i in range(40):
            detail = await client.variation_detail("top", Context.create(f"x{i}"), None)
            assert detail.value is False
            assert detail.reason == {
                "kind": "PREREQUISITE_FAILED",
                "prerequisiteKey": "mid",
            }


@pytest.mark.asyncio
@pytest.mark.usefixtures("quick")
async def test_issue98_G_careful_a_nested_segment_path_sees_the_pin() -> None:
    data = FlagData()
    _rollout(data)
    # A segment that references a segment sends "top" to the careful path.
    data.update(
        data.segment("inner").included("nobody"),
        data.segment("outer").rule(in_segment("inner")),
    )
    data.update(
        data.flag("top")
        .boolean()
        .prerequisite("f", True)
        .rule(in_segment("outer"), serve=False)
        .fallthrough(True)
    )
    async with _client(data, _pin_guard()) as client:
        await _pin(client)
        for i in range(40):
            assert not await client.bool_variation("top", Context.create(f"x{i}"), True)


# ---------------------------------------------------------------- G-prereq


@pytest.mark.asyncio
@pytest.mark.usefixtures("quick")
async def test_issue98_G_prereq_a_pinned_result_reached_no_prerequisite() -> None:
    data = FlagData()
    data.update(data.flag("p").boolean().fallthrough(True))
    data.update(
        data.flag("f")
        .boolean()
        .prerequisite("p", True)
        .fallthrough_rollout({True: 50, False: 50})
    )
    async with _client(data, _pin_guard()) as client:
        state = await client.all_flags_state(Context.create("x"), with_reasons=True)
        assert state.to_dict()["$flagsState"]["f"]["prerequisites"] == ["p"]
        await _pin(client)
        # The pin is served before the flag's code runs: no prerequisite
        # was evaluated (as its analytics events say: none for "p").
        state = await client.all_flags_state(Context.create("x"), with_reasons=True)
        entry = state.to_dict()["$flagsState"]["f"]
        assert entry["reason"] == {"kind": "GUARDED", "guard": "f"}
        assert "prerequisites" not in entry


@pytest.mark.asyncio
async def test_issue98_G_prereq_reached_through_a_chain_the_arm_counts() -> None:
    data = FlagData()
    _rollout(data)
    data.update(data.flag("mid").boolean().prerequisite("f", True).fallthrough(True))
    data.update(data.flag("top").boolean().prerequisite("mid", True).fallthrough(True))
    async with _client(data, _pin_guard()) as client:
        client.guards.clock = Clock()
        # Only "top" is evaluated: "f" is reached on the careful path, and
        # its answer (which "top" then serves) is the request's arm, as on
        # the plain path.
        for i in range(40):
            async with client.guards.request():
                await client.bool_variation("top", Context.create(f"x{i}"), False)
        arms = {arm.value: arm.requests for arm in client.guards.status["f"].arms}
        assert sum(arms.values()) == 40 and min(arms.values()) > 0


# ------------------------------------------------- G-events/coverage/usage

_GUARDED = {"kind": "GUARDED", "guard": "f"}


@pytest.mark.slow  # (a FlagServer, its events, a pin)
@pytest.mark.asyncio
@pytest.mark.usefixtures("quick")
async def test_issue98_G_events_a_pinned_evaluation_is_counted_as_control_with_its_reason() -> (
    None
):
    rollout = {
        "variations": [
            {"variation": 0, "weight": 50000},
            {"variation": 1, "weight": 50000},
        ]
    }
    flags = {
        "p": flag(),
        "f": flag(
            prerequisites=[{"key": "p", "variation": 0}],
            fallthrough={"rollout": rollout},
            trackEvents=True,
        ),
    }
    async with running(flags, guards=[_pin_guard()]) as (server, client, _):
        await _pin(client)
        await client.flush()
        server.clear_events()
        before = client.usage().flags["f"]
        for i in range(5):
            detail = await client.variation_detail("f", Context.create(f"x{i}"), None)
            assert (detail.value, detail.reason) == (False, _GUARDED)
        await client.flush()
        await server.wait_for_events(1, kind="summary")
        events = by_kind(server.events)
        feature = [e for e in events["feature"] if e["key"] == "f"]
        assert len(feature) == 5
        assert all(
            (e["variation"], e["value"], e["reason"]) == (1, False, _GUARDED)
            for e in feature
        )
        # The pin evaluated no prerequisite: no event says it did.
        assert not [e for e in events["feature"] if e.get("prereqOf") == "f"]
        (summary,) = events["summary"]
        counters = summary["features"]["f"]["counters"]
        assert [(c["variation"], c["value"], c["count"]) for c in counters] == [
            (1, False, 5)
        ]
        assert "p" not in summary["features"]
        # usage() counts them under the control variation's value.
        after = client.usage().flags["f"]
        served = {v.value: v.evaluations for v in after.variations}
        was = {v.value: v.evaluations for v in before.variations}
        assert served[False] - was.get(False, 0) == 5
        assert served.get(True, 0) == was.get(True, 0)


def test_issue98_G_coverage_a_pinned_evaluation_is_no_branch_of_the_flag() -> None:
    data = FlagData()
    _rollout(data)
    snapshot = snapshot_from_data(dict(data.flags))
    compiled = snapshot._data.flag("f")
    assert compiled is not None
    coverage = FlagCoverage()
    coverage.learn(compiled)
    pinned = aioflags.EvaluationDetail(
        value=False, variation_index=1, reason=Reason(_GUARDED)
    )
    coverage.count("f", compiled, pinned)
    rolled = aioflags.EvaluationDetail(
        value=True, variation_index=0, reason=Reason({"kind": "FALLTHROUGH"})
    )
    coverage.count("f", compiled, rolled)
    assert coverage.report()["flags"]["f"]["branches"] == {
        "off": 0,
        "fallthrough:0": 1,
        "fallthrough:1": 0,
    }


# ------------------------------------------------------------- attribution

#: The base error rate of every request, and the faulty treatment's extra.
_BASE, _FAULT = 0.01, 0.15


async def _two_flags(
    client: aioflags.Client, seed: int, count: int, *, stop: bool = True
) -> None:
    """``count`` requests evaluating "a" then "b"; "a"'s treatment (True) is faulty.

    Ends ``count`` requests after "a" is pinned if ``stop``.
    """
    clock = Clock()
    client.guards.clock = clock
    rng = random.Random(seed)
    left = count
    for i in range(20_000):
        with contextlib.suppress(LookupError):
            async with client.guards.request():
                user = Context.create(f"s{seed}-u{i}")
                a = await client.bool_variation("a", user, False)
                await client.bool_variation("b", user, False)
                clock.now += 0.01
                if rng.random() < _BASE + (_FAULT if a else 0.0):
                    raise LookupError("failed")
        if stop and client.guards.status["a"].state == "pinned":
            left -= 1
            if left == 0:
                return
        elif not stop and i >= count:
            return


def _attribution_data(seed: int | None) -> FlagData:
    data = FlagData()
    for key in ("a", "b"):
        data.update(
            data.flag(key)
            .boolean()
            .fallthrough_rollout({True: 50, False: 50}, seed=seed)
        )
    return data


@pytest.mark.slow  # (several thousand requests a seed)
@pytest.mark.asyncio
@pytest.mark.parametrize("seed", range(10))
async def test_issue98_attribution_independent_bucketing_pins_the_faulty_flag_only(
    seed: int,
) -> None:
    # Bucketed by flag key: "a"'s faulty requests fall evenly on "b"'s arms.
    data = _attribution_data(None)
    guards = [_pin_guard("a"), _pin_guard("b")]
    async with _client(data, *guards) as client:
        await _two_flags(client, seed, 500)
        status = client.guards.status
        assert status["a"].state == "pinned"
        assert status["b"].state == "collecting", status["b"].message


@pytest.mark.slow  # (several thousand requests)
@pytest.mark.asyncio
@pytest.mark.usefixtures("quick")
async def test_issue98_attribution_correlated_bucketing_cannot_tell_and_pins_neither(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The same rollout seed: "a"'s treatment requests are "b"'s treatment's.
    data = _attribution_data(42)
    guards = [_pin_guard("a"), _pin_guard("b")]
    with caplog.at_level(logging.WARNING, logger="aioflags.guards"):
        async with _client(data, *guards) as client:
            await _two_flags(client, 1, 4000, stop=False)
            status = client.guards.status
    for name, other in (("a", "b"), ("b", "a")):
        assert status[name].state == "cannot tell"
        assert f"cannot tell from {other!r}" in status[name].message
        said = [r for r in caplog.records if f"Guard {name!r}" in r.getMessage()]
        assert len(said) == 1 and said[0].levelno == logging.WARNING


# ------------------------------------------------------ hostile inputs (GA)


async def _failing_treatment(
    client: aioflags.Client, count: int, *, send: float | None = None
) -> None:
    """``count`` requests of "f"; a truthy answer fails; ``send``: metric "m" sent in each."""
    client.guards.clock = Clock()
    for i in range(count):
        with contextlib.suppress(LookupError):
            async with client.guards.request():
                user = Context.create(f"u{i}")
                value = await client.variation("f", user, None)
                if send is not None:
                    client.track("m", user, metric_value=send)
                if value:
                    raise LookupError("the treatment failed")


@pytest.mark.asyncio
@pytest.mark.usefixtures("quick")
async def test_issue98_GA1_control_served_by_a_second_variation_of_its_value_is_control(
    tmp_path: Path,
) -> None:
    # Variations [False, True, False]; the rollout serves True and the
    # second False. The second False is control as much as the first.
    rollout = [{"variation": 1, "weight": 50000}, {"variation": 2, "weight": 50000}]
    flags = {
        "f": {
            "key": "f",
            "version": 1,
            "on": True,
            "variations": [False, True, False],
            "offVariation": 0,
            "fallthrough": {"rollout": {"variations": rollout}},
            "salt": "s",
        }
    }
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": flags}))
    config = aioflags.Config(
        data_system=aioflags.DataSystem.file(str(path)), guards=[_pin_guard()]
    )
    async with aioflags.Client(config) as client:
        await _failing_treatment(client, 400)
        status = client.guards.status["f"]
        assert [(arm.variation, arm.control) for arm in status.arms] == [
            (1, False),
            (2, True),
        ]
        assert status.state == "pinned"
        detail = await client.variation_detail("f", Context.create("x"), None)
        assert (detail.value, detail.reason) == (False, _GUARDED)


@pytest.mark.asyncio
@pytest.mark.usefixtures("quick")
async def test_issue98_GA2_a_huge_metric_value_does_not_silence_the_guard(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = FlagData()
    _rollout(data)
    # The app metric is tested first; its values' squares overflow a float.
    guard = Guard(
        "f",
        control=False,
        metrics=[metric("m", worse="higher"), errors()],
        action="pin",
    )
    with caplog.at_level(logging.WARNING, logger="aioflags.guards"):
        async with _client(data, guard) as client:
            await _failing_treatment(client, 400, send=1e200)
            assert client.guards.status["f"].state == "pinned"
    said = [r.getMessage() for r in caplog.records if "too large" in r.getMessage()]
    assert len(said) == 1 and "'m'" in said[0]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.slow  # (the fixed code waits out the barrier's timeout)
@pytest.mark.asyncio
async def test_issue98_GA3_two_threads_looking_at_once_decide_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = FlagData()
    _rollout(data)
    async with _client(data, _pin_guard()) as client:
        told: list[str] = []
        client.guards.add_handler(lambda event: told.append(event.kind))
        store = client._evaluator.store
        assert isinstance(store, Store) and store.guarded is not None
        run = store.guarded["f"]
        assert isinstance(run, GuardRun)
        watch = run.current
        assert watch is not None
        # Counts that decide: the treatment (True) failed half its requests.
        for arm in watch.counts:
            arm.requests = 2000
        treatment = watch.arm_values.index(True)
        watch.counts[treatment].errors = 1000
        # Two threads of a blocking client reach a look at once: each waits
        # for the other inside its test. Fixed, the second skips its look,
        # the barrier times out, and the first decides alone.
        barrier = threading.Barrier(2, timeout=1.0)
        test = _stats.rates

        def meet(*args: Any) -> _stats.Evidence:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            return test(*args)

        monkeypatch.setattr(_stats, "rates", meet)
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(anyio.to_thread.run_sync, watch.look)
        assert told == ["pinned"]
        assert client.guards.status["f"].state == "pinned"


@pytest.mark.asyncio
@pytest.mark.parametrize("weights", [{True: 100, False: 0}, {True: 0, False: 100}])
async def test_issue98_GA4_a_rollout_with_nothing_to_compare_says_so_and_needs_nothing(
    weights: dict[bool, int],
) -> None:
    # One variation at 100 %: no traffic will ever let the guard compare,
    # so it must not say it needs 1,000 more requests per arm.
    data = FlagData()
    data.update(data.flag("f").boolean().fallthrough_rollout(weights))
    async with _client(data, _pin_guard()) as client:
        await _failing_treatment(client, 200)
        status = client.guards.status["f"]
        assert status.state == "collecting"
        assert status.needed is None
        assert "nothing to compare" in status.message


@pytest.mark.asyncio
async def test_issue98_GA5_a_scope_left_in_another_task_does_not_swallow_the_next_ones() -> (
    None
):
    data = FlagData()
    _rollout(data)
    async with _client(data, _pin_guard()) as client:
        client.guards.clock = Clock()
        scope = client.guards.request()
        await scope.__aenter__()
        await client.variation("f", Context.create("first"), None)
        async with anyio.create_task_group() as tg:  # (left in another task)
            tg.start_soon(scope.__aexit__, None, None, None)
        # This task's later requests each count, as if no scope were open.
        for i in range(10):
            async with client.guards.request():
                await client.variation("f", Context.create(f"u{i}"), None)
            with client.guards.request():
                await client.variation("f", Context.create(f"w{i}"), None)
        arms = client.guards.status["f"].arms
        assert sum(arm.requests for arm in arms) == 21
