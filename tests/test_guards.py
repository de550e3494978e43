"""Guarded rollouts' runtime (issue 98): configuration, the request scope, counting, deciding.

Every rule through the public API on a real client fed by ``FlagData``:
what counts and what does not, a new version starting afresh, the sample
ratio, alert and pin, release, bad input, and a guard never raising into
the request. Traffic is synthetic and seeded; time is a fake clock the
test moves (``client.guards.clock``), so decisions come in a few hundred
requests and no test waits on the wall clock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import aioflags
from aioflags import ConfigurationError, Context, Guard
from aioflags._datasystem._store import Store
from aioflags.guards import GuardEvent, errors, latency, metric
from aioflags.testing import FlagBuilder, FlagData, clause

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aioflags import EvaluationDetail, EvaluationSeriesContext

#: Bad traffic: the treatment (True) fails this often, control never.
BAD = 0.4


class Clock:
    """The guards' clock: moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _data(*, rollout: bool = True) -> FlagData:
    data = FlagData()
    flag = data.flag("f").boolean()
    flag = (
        flag.fallthrough_rollout({True: 50, False: 50})
        if rollout
        else flag.fallthrough(True)
    )
    data.update(flag)
    return data


def _client(data: FlagData, *guards: Guard, **options: Any) -> aioflags.Client:
    return aioflags.Client(
        aioflags.Config(data_system=data.data_system(), guards=guards, **options)
    )


def _guard(**options: Any) -> Guard:
    options.setdefault("control", False)
    options.setdefault("metrics", [errors()])
    return Guard("f", **options)


async def _requests(
    client: aioflags.Client,
    clock: Clock,
    count: int,
    *,
    seed: int = 1,
    fail: Callable[[bool, random.Random], bool] = lambda value, rng: (
        value and rng.random() < BAD
    ),
    seconds: Callable[[bool], float] = lambda value: 0.01,
    until: str | None = None,
    prefix: str = "u",
    name: str = "f",
) -> int:
    """``count`` requests in scopes, each evaluating "f" for a new user; how many ran."""
    rng = random.Random(seed)
    for i in range(count):
        with contextlib.suppress(LookupError):  # (raised through the scope)
            async with client.guards.request():
                value = await client.bool_variation(
                    "f", Context.create(f"{prefix}{i}"), False
                )
                clock.now += seconds(value)
                if fail(value, rng):
                    raise LookupError("the treatment failed")
        if until is not None and client.guards.status[name].state == until:
            return i + 1
    return count


async def _publish(
    client: aioflags.Client, data: FlagData, builder: FlagBuilder
) -> None:
    """Publish ``builder`` and wait until the client has applied it."""
    applied = anyio.Event()
    remove = client.add_flag_change_handler(lambda keys: applied.set())
    try:
        data.update(builder)
        with anyio.fail_after(10):
            await applied.wait()
    finally:
        remove()


def _arms(client: aioflags.Client) -> dict[Any, int]:
    return {arm.value: arm.requests for arm in client.guards.status["f"].arms}


# ------------------------------------------------------------------ no guards


@pytest.mark.asyncio
async def test_issue98_without_guards_the_request_scope_is_a_no_op() -> None:
    data = _data()
    async with _client(data) as client:
        assert client.guards.status == {}
        async with client.guards.request() as scope:
            scope.status = 503
            await client.variation("f", Context.create("u"), False)
        with client.guards.request():
            pass
        assert client.guards.status == {}
        # Nothing guards the flag: its head is its own code.
        store = client._evaluator.store
        assert isinstance(store, Store)
        assert store.guarded is None
        matcher = store.data.matcher
        assert matcher.guarded is None
        assert matcher.heads["f"] is matcher.flag("f").code


@pytest.mark.asyncio
async def test_issue98_an_unguarded_flag_keeps_its_own_head_beside_a_guarded_one() -> (
    None
):
    data = _data()
    data.update(data.flag("other").boolean().fallthrough_rollout({True: 50, False: 50}))
    async with _client(data, _guard()) as client:
        await client.variation("other", Context.create("u"), False)
        await client.variation("f", Context.create("u"), False)
        matcher = client._evaluator.store.data.matcher
        assert matcher.heads["other"] is matcher.flag("other").code
        assert matcher.heads["f"] is not matcher.flag("f").code


# ------------------------------------------------------------- what counts


@pytest.mark.asyncio
async def test_issue98_only_a_rollouts_answer_in_a_scope_counts() -> None:
    data = FlagData()
    data.update(
        data.flag("f")
        .boolean()
        .target(True, "targeted")
        .rule(clause("plan", "in", "pro"), serve=True)
        .fallthrough_rollout({True: 50, False: 50})
    )
    async with _client(data, _guard()) as client:
        outside = Context.create("outside")
        await client.variation("f", outside, False)  # no scope: not counted
        for context in (
            Context.create("targeted"),  # a target
            Context.from_dict({"key": "p", "custom": {"plan": "pro"}}),  # a fixed rule
        ):
            async with client.guards.request():
                detail = await client.variation_detail("f", context, False)
                assert detail.value is True
        assert _arms(client) == {True: 0, False: 0}
        async with client.guards.request():
            await client.variation("missing-flag", outside, False)  # a default
        async with client.guards.request():
            await client.variation("f", Context.create("rolled"), False)
        assert sum(_arms(client).values()) == 1
        # The flag off: its off variation is no arm.
        await _publish(client, data, data.flag("f").off())
        async with client.guards.request():
            assert await client.variation("f", Context.create("off"), None) is not None
        assert sum(_arms(client).values()) == 0  # (a new version: afresh)


@pytest.mark.asyncio
async def test_issue98_a_lens_override_does_not_count() -> None:
    pytest.importorskip("jwt")
    from aioflags.lens import LensConfig, mint, scope

    secret = "a-secret-of-the-guard-tests-0123456789abcdef"
    data = _data()
    lens = LensConfig(secrets=[secret], allow=["f"])
    async with _client(data, _guard(), lens=lens) as client:
        token = mint(secret, {"f": True}, ttl=60)
        for i in range(20):
            async with client.guards.request():
                with scope(client, token):
                    detail = await client.variation_detail(
                        "f", Context.create(f"u{i}"), False
                    )
                    assert detail.reason["kind"] == "OVERRIDE"
        assert sum(_arms(client).values()) == 0


@pytest.mark.asyncio
async def test_issue98_the_first_evaluation_in_a_scope_is_its_arm_and_the_outer_scope_counts() -> (
    None
):
    data = _data()
    async with _client(data, _guard()) as client:
        async with client.guards.request():
            first = await client.variation("f", Context.create("a"), False)
            # Another user's answer in the same request: the arm stays the first.
            for i in range(20):
                await client.variation("f", Context.create(f"b{i}"), False)
            with client.guards.request():  # nested: does nothing
                await client.variation("f", Context.create("c"), False)
        assert _arms(client)[first] == 1
        assert sum(_arms(client).values()) == 1


@pytest.mark.asyncio
async def test_issue98_a_sync_scope_counts_and_an_exception_leaves_it_untouched() -> (
    None
):
    data = _data()
    clock = Clock()
    async with _client(data, _guard()) as client:
        client.guards.clock = clock
        snapshot = client.snapshot()
        raised = LookupError("boom")
        served: list[bool] = []

        def request() -> None:
            with client.guards.request():
                served.append(snapshot.bool_variation("f", Context.create("a"), False))
                raise raised

        with pytest.raises(LookupError) as caught:
            request()
        assert caught.value is raised
        arm = next(a for a in client.guards.status["f"].arms if a.value is served[0])
        assert (arm.requests, arm.errors) == (1, 1)


@pytest.mark.asyncio
async def test_issue98_a_5xx_status_is_an_error_and_a_4xx_is_not() -> None:
    data = _data()
    async with _client(data, _guard()) as client:
        for i, status in enumerate((503, 404, 200, 500)):
            async with client.guards.request() as scope:
                await client.variation("f", Context.create("same"), False)
                scope.status = status
            del i
        (arm,) = (a for a in client.guards.status["f"].arms if a.requests)
        assert (arm.requests, arm.errors) == (4, 2)


@pytest.mark.slow  # (a decision: 2,000 requests or more)
@pytest.mark.asyncio
async def test_issue98_a_new_flag_version_starts_afresh() -> None:
    data = _data()
    clock = Clock()
    async with _client(data, _guard(action="pin")) as client:
        client.guards.clock = clock
        await _requests(client, clock, 3000, until="pinned")
        status = client.guards.status["f"]
        assert status.state == "pinned"
        version = status.version
        await _publish(
            client, data, data.flag("f").fallthrough_rollout({True: 50, False: 50})
        )
        status = client.guards.status["f"]
        assert status.version != version
        assert status.state == "collecting"
        assert sum(arm.requests for arm in status.arms) == 0
        detail = await client.variation_detail("f", Context.create("u0"), False)
        assert detail.reason["kind"] == "FALLTHROUGH"


# ------------------------------------------------------------ sample ratio


@pytest.mark.slow
@pytest.mark.asyncio
async def test_issue98_arms_off_the_weights_decide_nothing() -> None:
    data = _data()
    clock = Clock()
    async with _client(data, _guard(action="pin")) as client:
        client.guards.clock = clock
        snapshot = client.snapshot()
        # Users bucketed: the requests of 9 treatment users to 1 control.
        treated = [
            f"u{i}"
            for i in range(20000)
            if snapshot.bool_variation("f", Context.create(f"u{i}"), False)
        ]
        control = [
            f"u{i}"
            for i in range(20000)
            if not snapshot.bool_variation("f", Context.create(f"u{i}"), False)
        ]
        keys = [*treated[:2700], *control[:300]]
        random.Random(2).shuffle(keys)
        rng = random.Random(3)
        for key in keys:
            with contextlib.suppress(LookupError):
                async with client.guards.request():
                    value = await client.bool_variation("f", Context.create(key), False)
                    clock.now += 0.01
                    if value and rng.random() < BAD:
                        raise LookupError
        status = client.guards.status["f"]
        assert status.state == "sample ratio off"
        assert "off the rollout's weights" in status.message
        detail = await client.variation_detail("f", Context.create(treated[0]), False)
        assert detail.value is True  # nothing pinned


# -------------------------------------------------------------- decisions


@pytest.mark.slow  # (a decision: 2,000 requests or more)
@pytest.mark.asyncio
async def test_issue98_alert_logs_one_warning_with_both_arms_figures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = _data()
    clock = Clock()
    seen: list[GuardEvent] = []
    async with _client(data, _guard()) as client:
        client.guards.clock = clock
        client.guards.add_handler(seen.append)
        with caplog.at_level(logging.INFO, logger="aioflags.guards"):
            await _requests(client, clock, 3000)
        warnings = [
            r
            for r in caplog.records
            if r.name == "aioflags.guards" and r.levelno >= logging.WARNING
        ]
        assert len(warnings) == 1, warnings
        status = client.guards.status["f"]
        assert status.state == "alerted"
        said = warnings[0].getMessage()
        assert [e.kind for e in seen] == ["alerted"]
        # (the arms as they were then: they go on counting)
        treatment, control = sorted(seen[0].status.arms, key=lambda a: a.control)
        assert f"{treatment.errors}/{treatment.requests} errors" in said
        assert f"{control.errors}/{control.requests} errors" in said
        assert "variation True" in said and "control False" in said
        assert "metric 'errors'" in said and "'f'" in said and "e-value" in said
        assert said.count("errors (") == 2  # both arms' counts and rates
        assert seen[0].message == said and seen[0].metric == "errors"
        # An alert serves the rollout as before.
        values = {
            await client.bool_variation("f", Context.create(f"x{i}"), False)
            for i in range(50)
        }
        assert values == {True, False}
        # A late handler is told the decisions made before, and so is an iterator.
        late: list[GuardEvent] = []
        client.guards.add_handler(late.append)
        assert late == seen
        events = client.guards.events()
        assert await events.__anext__() == seen[0]
        await events.aclose()


@pytest.mark.slow  # (a decision: 2,000 requests or more)
@pytest.mark.asyncio
async def test_issue98_pin_serves_control_with_reason_guarded_everywhere() -> None:
    data = _data()
    data.update(
        data.flag("needs-f-off").boolean().prerequisite("f", False).fallthrough(True)
    )
    clock = Clock()
    shown: list[EvaluationDetail[Any]] = []

    class Seen(aioflags.Hook):
        def after_evaluation(
            self,
            series_context: EvaluationSeriesContext,
            data: Mapping[str, Any],
            detail: EvaluationDetail[Any],
        ) -> Mapping[str, Any]:
            if series_context.key == "f":
                shown.append(detail)
            return data

    async with _client(data, _guard(action="pin"), hooks=[Seen()]) as client:
        client.guards.clock = clock
        await _requests(client, clock, 3000, until="pinned")
        assert client.guards.status["f"].state == "pinned"
        guarded = {"kind": "GUARDED", "guard": "f"}
        for i in range(30):
            detail = await client.variation_detail("f", Context.create(f"x{i}"), True)
            assert (detail.value, detail.variation_index) == (False, 1)
            assert detail.reason == guarded
        assert shown[-1].reason == guarded
        state = await client.all_flags_state(Context.create("x0"), with_reasons=True)
        entry = state.to_dict()["$flagsState"]["f"]
        assert state.to_dict()["f"] is False and entry["reason"] == guarded
        # A prerequisite on the pinned flag sees control, for every user.
        for i in range(30):
            assert await client.bool_variation(
                "needs-f-off", Context.create(f"x{i}"), False
            )
        # The snapshot's sync face sees the pin too.
        assert (
            client.snapshot().variation_detail("f", Context.create("y"), True).reason
            == guarded
        )


@pytest.mark.slow  # (a decision: 2,000 requests or more)
@pytest.mark.asyncio
async def test_issue98_release_serves_the_rollout_and_does_not_pin_again() -> None:
    data = _data()
    clock = Clock()
    seen: list[GuardEvent] = []
    async with _client(data, _guard(action="pin", name="checkout")) as client:
        client.guards.clock = clock
        client.guards.add_handler(seen.append)
        await _requests(client, clock, 3000, until="pinned", name="checkout")
        with pytest.raises(KeyError, match="no guard named 'f'"):
            client.guards.release("f")
        assert client.guards.release("checkout") is True
        assert client.guards.release("checkout") is False
        status = client.guards.status["checkout"]
        assert status.state == "released"
        values = {
            await client.bool_variation("f", Context.create(f"x{i}"), False)
            for i in range(50)
        }
        assert values == {True, False}
        await _requests(client, clock, 2000, seed=5, prefix="w", name="checkout")
        assert client.guards.status["checkout"].state == "released"
        assert [e.kind for e in seen] == ["pinned", "released"]


@pytest.mark.slow  # (a decision: 2,000 requests or more)
@pytest.mark.asyncio
async def test_issue98_latency_decides_on_a_slower_treatment() -> None:
    data = _data()
    clock = Clock()
    async with _client(data, _guard(metrics=[latency()])) as client:
        client.guards.clock = clock
        rng = random.Random(7)
        await _requests(
            client,
            clock,
            5000,
            fail=lambda value, rng: False,
            seconds=lambda value: rng.lognormvariate(
                math.log(0.05 if value else 0.02), 0.3
            ),
            until="alerted",
        )
        status = client.guards.status["f"]
        assert status.state == "alerted" and "metric 'latency'" in status.message
        treatment, control = sorted(status.arms, key=lambda a: a.control)
        assert treatment.latency is not None and control.latency is not None
        assert treatment.latency > control.latency


@pytest.mark.asyncio
async def test_issue98_an_app_metric_sums_per_request_and_drops_what_is_not_finite(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = _data()
    clock = Clock()
    guard = _guard(metrics=[metric("cart", worse="lower")])
    async with _client(data, guard) as client:
        client.guards.clock = clock
        context = Context.create("buyer")
        with caplog.at_level(logging.WARNING, logger="aioflags.guards"):
            async with client.guards.request():
                value = await client.bool_variation("f", context, False)
                client.track("cart", context, metric_value=2.0)
                client.track("cart", context, metric_value=3)
                client.track("cart", context, metric_value=math.nan)
                client.track("cart", context, metric_value=math.inf)
                client.track("other", context, metric_value=100.0)  # not a guard metric
            client.track("cart", context, metric_value=50.0)  # outside a scope
        arm = next(a for a in client.guards.status["f"].arms if a.value is value)
        assert arm.metrics == {"cart": 5.0}
        said = [r for r in caplog.records if r.name == "aioflags.guards"]
        assert len(said) == 1 and "'cart'" in said[0].getMessage()
        clock.now += 61  # a minute later: said again
        with caplog.at_level(logging.WARNING, logger="aioflags.guards"):
            async with client.guards.request():
                client.track("cart", context, metric_value=math.nan)
        assert len([r for r in caplog.records if r.name == "aioflags.guards"]) == 2


@pytest.mark.asyncio
async def test_issue98_a_failing_statistic_never_reaches_the_request(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aioflags._guards import _stats

    def broken(*args: object) -> _stats.Evidence:
        raise ZeroDivisionError("a bug in the statistics")

    monkeypatch.setattr(_stats, "rates", broken)
    data = _data()
    clock = Clock()
    async with _client(data, _guard(action="pin")) as client:
        client.guards.clock = clock
        with caplog.at_level(logging.ERROR, logger="aioflags.guards"):
            ran = await _requests(client, clock, 3000)  # (looks from the 2,000th)
        assert ran == 3000
        failures = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(failures) == 1 and failures[0].exc_info is not None
        assert client.guards.status["f"].state == "collecting"


# -------------------------------------------------------- data-time checks


@pytest.mark.asyncio
async def test_issue98_a_missing_flag_is_one_error_naming_the_guard_and_the_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = _data()
    with caplog.at_level(logging.WARNING, logger="aioflags.guards"):
        async with _client(data, Guard("nope", control=False, name="g")) as client:
            await _publish(
                client, data, data.flag("f").fallthrough_rollout({True: 40, False: 60})
            )
            status = client.guards.status["g"]
    said = [r for r in caplog.records if r.name == "aioflags.guards"]
    assert [r.levelno for r in said] == [logging.ERROR]
    assert (
        "Guard 'g'" in said[0].getMessage()
        and "Guard.flag 'nope'" in said[0].getMessage()
    )
    assert status.state == "misconfigured"


@pytest.mark.asyncio
async def test_issue98_a_control_the_flag_does_not_serve_is_one_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = _data()
    with caplog.at_level(logging.WARNING, logger="aioflags.guards"):
        async with _client(data, _guard(control="blue")) as client:
            await client.variation("f", Context.create("u"), False)
            status = client.guards.status["f"]
    said = [r for r in caplog.records if r.name == "aioflags.guards"]
    assert [r.levelno for r in said] == [logging.ERROR]
    assert "Guard.control 'blue'" in said[0].getMessage()
    assert status.state == "misconfigured"


@pytest.mark.asyncio
async def test_issue98_no_rollout_is_a_warning_until_the_flag_gets_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = _data(rollout=False)
    with caplog.at_level(logging.WARNING, logger="aioflags.guards"):
        async with _client(data, _guard()) as client:
            assert client.guards.status["f"].state == "no rollout"
            said = [r for r in caplog.records if r.name == "aioflags.guards"]
            assert [r.levelno for r in said] == [logging.WARNING]
            assert "decides nothing" in said[0].getMessage()
            await _publish(
                client, data, data.flag("f").fallthrough_rollout({True: 10, False: 90})
            )
            assert client.guards.status["f"].state == "collecting"


@pytest.mark.asyncio
async def test_issue98_before_data_the_guard_is_waiting() -> None:
    client = _client(_data(), _guard())
    assert client.guards.status["f"].state == "waiting for data"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda: Guard("f", control=False, metrics=["errors"]), "unknown metric"),  # type: ignore[list-item]
        (lambda: Guard("f", control=False, metrics=errors()), "metrics is a list"),  # type: ignore[arg-type]
        (lambda: Guard("f", control=False, metrics=[]), "at least one metric"),
        (lambda: Guard("f", control=False, metrics=[errors(), errors()]), "twice"),
        (lambda: Guard("f", control=False, alpha=0), "alpha"),
        (lambda: Guard("f", control=False, alpha=0.5), "alpha"),
        (lambda: Guard("f", control=False, alpha=math.nan), "alpha"),
        (lambda: Guard("f", control=False, action="stop"), "action"),  # type: ignore[arg-type]
        (lambda: Guard("", control=False), r"Guard\(flag\)"),
        (lambda: Guard("f", control=False, name=""), "name"),
        (lambda: metric("cart", worse="bad"), "worse"),  # type: ignore[arg-type]
        (lambda: metric("errors", worse="higher"), "built-in"),
        (lambda: aioflags.Config(offline=True, guards=5), "guards must be"),  # type: ignore[arg-type]
        (
            lambda: aioflags.Config(
                offline=True, guards=[Guard("f", control=1), Guard("f", control=2)]
            ),
            "two guards on flag 'f'",
        ),
        (
            lambda: aioflags.Config(
                offline=True,
                guards=[
                    Guard("f", control=1, name="n"),
                    Guard("g", control=2, name="n"),
                ],
            ),
            "two guards named 'n'",
        ),
    ],
    ids=[
        "metric-unknown",
        "metrics-not-a-list",
        "metrics-empty",
        "metric-twice",
        "alpha-zero",
        "alpha-half",
        "alpha-nan",
        "action",
        "flag",
        "name",
        "worse",
        "metric-built-in",
        "guards-not-a-list",
        "flag-twice",
        "name-twice",
    ],
)
def test_issue98_bad_input_is_refused_at_configuration_naming_the_field(
    make: Callable[[], object], said: str
) -> None:
    with pytest.raises(ConfigurationError, match=said) as raised:
        make()
    assert "\n" not in str(raised.value)


def test_issue98_metric_requires_worse_and_says_why() -> None:
    with pytest.raises(TypeError, match="worse"):
        metric("cart")  # type: ignore[call-arg]
    assert metric("cart", worse="lower").worse == "lower"
    assert aioflags.guards.errors().name == "errors"


# ----------------------------------------------------------- sync callers


@pytest.mark.slow  # (a decision: 2,000 requests or more)
@pytest.mark.asyncio
async def test_issue98_a_blocking_clients_pin_wakes_an_iterator_on_another_loop() -> (
    None
):
    from aioflags.blocking import Client as BlockingClient

    data = _data()
    clock = Clock()
    config = aioflags.Config(
        data_system=data.data_system(), guards=[_guard(action="pin")]
    )
    client = BlockingClient(config)
    client.guards.clock = clock
    events = client.guards.events()
    got: list[GuardEvent] = []

    def drive() -> str:
        """Sync requests on this worker thread, until the guard pins."""
        rng = random.Random(1)
        with client:
            for i in range(6000):
                with contextlib.suppress(LookupError), client.guards.request():
                    value = client.bool_variation("f", Context.create(f"u{i}"), False)
                    clock.now += 0.01
                    if value and rng.random() < BAD:
                        raise LookupError
                if client.guards.status["f"].state == "pinned":
                    break
            detail = client.variation_detail("f", Context.create("after"), True)
            return str(detail.reason["kind"])

    async def wait() -> None:
        got.append(await events.__anext__())

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert await anyio.to_thread.run_sync(drive) == "GUARDED"
    await events.aclose()
    assert [event.kind for event in got] == ["pinned"]


@pytest.mark.asyncio
async def test_issue98_iterators_waiting_on_two_event_loops_each_get_the_decision() -> (
    None
):
    # Two threads, each running an event loop of its own, iterate the
    # events; a decision wakes both. (They shared one wake event, bound to
    # the first one's loop: the second's wait raised RuntimeError.)
    import asyncio

    data = _data()
    async with _client(data, _guard(action="pin")) as client:
        guards = client.guards

        async def first_kind() -> str:
            events = guards.events()
            try:
                return (await asyncio.wait_for(events.__anext__(), 60)).kind
            finally:
                await events.aclose()

        kinds: list[str] = []

        async def iterate() -> None:
            kinds.append(await anyio.to_thread.run_sync(asyncio.run, first_kind()))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(iterate)
                tg.start_soon(iterate)
                while len(guards._waiters) < 2:  # noqa: ASYNC110 - (waiting on other loops)
                    await anyio.sleep(0.005)
                watch = guards._runs["f"].current
                assert watch is not None
                for arm in watch.counts:
                    arm.requests = 2000
                watch.counts[watch.arm_values.index(True)].errors = 1000
                watch.look()
        assert kinds == ["pinned", "pinned"]


@pytest.mark.asyncio
async def test_issue98_gcost_a_requests_end_appends_its_seconds_folded_later_looked_on_schedule() -> (
    None
):
    """Recording appends a float a request (its seconds' log2): the sums wait for a fold.

    A fold every 250 requests (or a look, or the status); the first look
    at the floor (1,000 requests per arm: 2,000 in a 50/50 rollout), the
    next 100 per arm later while the counts are under 1,600 per arm, as
    the simulations of docs/benchmarks.md look (``_stats.next_look``).
    """
    data = _data()
    clock = Clock()
    async with _client(data, _guard(metrics=[errors(), latency()])) as client:
        client.guards.clock = clock
        watch = client.guards._runs["f"].current
        assert watch is not None
        assert (watch.next_look, watch.left) == (2000, 250)
        await _requests(client, clock, 249, fail=lambda value, rng: not value)
        assert [c.requests for c in watch.counts] == [0, 0]  # nothing folded yet
        assert watch.left == 1  # (249 wait)
        waiting = {
            (watch.arm_values[lane.arm], failed): [round(t, 6) for t in logs]
            for lane in watch.lanes
            for failed, logs in ((0, lane.ok), (1, lane.failed))
        }  # (only the seconds' log2, in their arm's lane by outcome: control failed)
        assert not waiting[True, 1] and not waiting[False, 0]
        assert len(waiting[True, 0]) + len(waiting[False, 1]) == 249
        assert set(waiting[True, 0]) | set(waiting[False, 1]) == {
            round(math.log2(0.01), 6)
        }
        await _requests(client, clock, 1, prefix="v")
        assert watch.left == 250  # the 250th: folded, not looked at
        assert not any(lane.ok or lane.failed for lane in watch.lanes)
        assert sum(c.requests for c in watch.counts) == watch.seen == 250
        assert watch.evidence == []  # (no look before the floor)
        assert all(
            c.log_s == pytest.approx(c.log_n * math.log(0.01)) for c in watch.counts
        )
        await _requests(client, clock, 1750, prefix="w")
        assert watch.seen == 2000 and watch.evidence != []  # looked at the floor
        assert watch.next_look == 2200
        await _requests(client, clock, 10, prefix="x")
        arms = _arms(client)  # (the status folds what waits, without a look)
        assert sum(arms.values()) == 2010
        assert watch.left == 190  # (the next look still at the 2,200th)


@pytest.mark.asyncio
async def test_issue98_gcost_the_inline_record_counts_as_the_general_path() -> None:
    """A scope's end records the common request inline: the same counts as the general path.

    The same requests, once as plain scopes (inline: no status, no error)
    and once with ``status = 200`` set (the general path a middleware
    takes): each arm's requests, errors and log-latency sums agree.
    """
    found = []
    for status in (None, 200):
        data = _data()
        clock = Clock()
        async with _client(data, _guard()) as client:
            client.guards.clock = clock
            watch = client.guards._runs["f"].current
            assert watch is not None
            for i in range(1500):
                async with client.guards.request() as scope:
                    await client.bool_variation("f", Context.create(f"u{i}"), False)
                    clock.now += 0.001 * (1 + i % 7)
                    scope.status = status
            _arms(client)  # (folds what waits)
            found.append(
                [
                    (
                        c.requests,
                        c.errors,
                        c.log_n,
                        round(c.log_s, 6),
                        round(c.log_q, 6),
                    )
                    for c in watch.counts
                ]
            )
    assert found[0] == found[1]
    assert sum(arm[0] for arm in found[0]) == 1500


@pytest.mark.asyncio
async def test_issue98_gcost_the_fold_sums_the_logarithms_and_their_squares() -> None:
    """The fold's sum of squares (hypot's square, one call in C) is the sum of the squares."""
    data = _data()
    clock = Clock()
    async with _client(data, _guard()) as client:
        client.guards.clock = clock
        rng = random.Random(98)
        await _requests(
            client,
            clock,
            1000,
            fail=lambda value, rng: False,
            seconds=lambda value: rng.lognormvariate(-4.0, 2.0),  # (µs to minutes)
        )
        watch = client.guards._runs["f"].current
        assert watch is not None
        watch.fold(look=False)
        # The same durations, again: each request's seconds, by arm.
        seen: dict[int, list[float]] = {arm: [] for arm in range(len(watch.counts))}
        rng = random.Random(98)
        for i in range(1000):
            result = await client.variation_detail("f", Context.create(f"u{i}"), False)
            assert result.variation_index is not None
            arm = watch.arm_variations.index(result.variation_index)
            seen[arm].append(rng.lognormvariate(-4.0, 2.0))
        for arm, counts in enumerate(watch.counts):
            logs = [math.log(second) for second in seen[arm]]
            assert counts.log_n == len(logs) > 400
            assert counts.log_s == pytest.approx(math.fsum(logs), rel=1e-12)
            assert counts.log_q == pytest.approx(
                math.fsum(x * x for x in logs), rel=1e-12
            )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "wrong", [0.0, -0.5, math.nan, math.inf], ids=["still", "back", "nan", "inf"]
)
async def test_issue98_gcost_a_clock_gone_wrong_counts_the_floor_and_spoils_nothing(
    wrong: float,
) -> None:
    """A duration that is not a positive finite number counts 1e-9 s: the sums stay finite."""
    data = _data()
    # The clock a scope reads at its start, then at its end: 0, then the
    # request's duration (every tenth one gone wrong).
    readings = iter(
        reading for i in range(300) for reading in (0.0, wrong if i % 10 == 3 else 0.01)
    )
    async with _client(data, _guard()) as client:
        client.guards.clock = lambda: next(readings)
        for i in range(300):
            async with client.guards.request():
                await client.bool_variation("f", Context.create(f"u{i}"), False)
        watch = client.guards._runs["f"].current
        assert watch is not None
        watch.fold(look=False)
        assert sum(c.log_n for c in watch.counts) == 300
        floor = math.log(1e-9)
        total = sum(c.log_s for c in watch.counts)
        assert total == pytest.approx(30 * floor + 270 * math.log(0.01), rel=1e-12)
        squares = sum(c.log_q for c in watch.counts)
        assert squares == pytest.approx(
            30 * floor**2 + 270 * math.log(0.01) ** 2, rel=1e-12
        )
        assert client.guards.status["f"].state == "collecting"  # (no error)


@pytest.mark.asyncio
async def test_issue98_gcost_two_guarded_flags_in_a_request_each_count_it_once() -> (
    None
):
    data = FlagData()
    for key in ("f", "g", "h"):
        data.update(data.flag(key).boolean().fallthrough_rollout({True: 50, False: 50}))
    guards = [Guard(key, control=False, metrics=[errors()]) for key in "fgh"]
    async with _client(data, *guards) as client:
        for i in range(30):
            with contextlib.suppress(LookupError):
                async with client.guards.request():
                    for key in ("f", "g", "f", "h", "g"):
                        await client.bool_variation(key, Context.create(f"u{i}"), False)
                    raise LookupError  # (each request failed)
        for key in "fgh":
            arms = client.guards.status[key].arms
            assert sum(arm.requests for arm in arms) == 30, key
            assert sum(arm.errors for arm in arms) == 30, key


@pytest.mark.slow  # (4 threads x 500 requests)
@pytest.mark.asyncio
async def test_issue98_gcost_requests_ended_on_many_threads_are_each_counted_once() -> (
    None
):
    """A blocking client's requests on several threads: folds never lose or repeat one."""
    import threading

    from aioflags.blocking import Client as BlockingClient

    data = _data()
    config = aioflags.Config(data_system=data.data_system(), guards=[_guard()])
    client = BlockingClient(config)
    start = threading.Barrier(4)

    def drive(thread: int) -> None:
        start.wait(timeout=30)
        for i in range(500):
            with client.guards.request():
                client.bool_variation("f", Context.create(f"t{thread}-{i}"), False)

    with anyio.fail_after(60):
        await anyio.to_thread.run_sync(client.__enter__)
        try:
            async with anyio.create_task_group() as tg:
                for n in range(4):
                    tg.start_soon(anyio.to_thread.run_sync, drive, n)
            arms = client.guards.status["f"].arms
        finally:
            await anyio.to_thread.run_sync(client.__exit__, None, None, None)
    assert sum(arm.requests for arm in arms) == 2000


# -------------------------------------------------------------------- flagd


@pytest.mark.slow  # (a decision: 2,000 requests or more)
@pytest.mark.asyncio
async def test_issue98_a_flagd_fractional_is_guarded_as_a_rollout(
    tmp_path: Path,
) -> None:
    flags = {
        "flags": {
            "f": {
                "state": "ENABLED",
                "variants": {"new": True, "old": False},
                "defaultVariant": "old",
                "targeting": {
                    "if": [
                        {"==": [{"var": "targetingKey"}, "pinned-user"]},
                        "new",
                        {"fractional": [["new", 50], ["old", 50]]},
                    ]
                },
            }
        }
    }
    path = tmp_path / "flags.flagd.json"
    path.write_text(json.dumps(flags), encoding="utf-8")
    clock = Clock()
    config = aioflags.Config(
        data_system=aioflags.DataSystem.file(str(path)),
        guards=[_guard(action="pin")],
    )
    async with aioflags.Client(config) as client:
        client.guards.clock = clock
        # A rule's variant, not the fractional's: not counted.
        async with client.guards.request():
            assert await client.bool_variation(
                "f", Context.create("pinned-user"), False
            )
        assert sum(_arms(client).values()) == 0
        await _requests(client, clock, 6000, until="pinned")
        assert client.guards.status["f"].state == "pinned"
        detail = await client.variation_detail("f", Context.create("x"), True)
        assert detail.value is False
        assert detail.reason == {"kind": "GUARDED", "guard": "f"}
