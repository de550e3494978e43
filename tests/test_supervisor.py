"""The supervisor's state machine, with scripted sources and a fake clock (no network, no sleeps)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx
import pytest

from aioflags import Context, DataSystem, ErrorInfo, ErrorKind, SourceState, sources
from aioflags._datasystem._store import Store
from aioflags._datasystem._supervisor import Supervisor
from aioflags.sources import Basis, ProtocolError, SourceError, Update
from aioflags.testing import FakeClock
from tests.sources import Ended, Recorder, Scripted, basis, put, source_context, valid

USER = Context.create("u")


@dataclass
class Harness:
    supervisor: Supervisor
    store: Store
    recorder: Recorder
    clock: FakeClock
    done: anyio.Event

    def state(self) -> SourceState:
        """Read through a function so mypy does not narrow it across awaits."""
        return self.supervisor.status.state

    def value(self, key: str) -> object:
        return self.store.snapshot.variation(key, USER, "default")

    async def wait_value(self, key: str, expected: object) -> None:
        """Wait until the store serves `expected` for `key` (told by the listener)."""
        await self.recorder.wait_for(lambda: self.value(key) == expected)


@asynccontextmanager
async def running(system: DataSystem) -> AsyncIterator[Harness]:
    clock = FakeClock()
    store = Store()
    recorder = Recorder()
    done = anyio.Event()
    # The scripted sources send no request: no CA bundle to load (tens of ms).
    async with httpx.AsyncClient(verify=False) as http:
        sup = Supervisor(system, store, source_context(http, clock), recorder, clock)

        async def run() -> None:
            await sup.run()
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            yield Harness(sup, store, recorder, clock, done)
            tg.cancel_scope.cancel()


def error(status: int = 500, *, fatal: bool = False) -> ErrorInfo:
    return ErrorInfo(
        kind=ErrorKind.ERROR_RESPONSE,
        status_code=status,
        message=f"HTTP error {status}",
        fatal=fatal,
    )


# ------------------------------------------------------------- initializers


@pytest.mark.asyncio
async def test_initializers_run_in_order_until_a_defined_selector() -> None:
    first, second, third = (
        Scripted[Basis]("i1"),
        Scripted[Basis]("i2"),
        Scripted[Basis]("i3"),
    )
    sync = Scripted[Update]("s")
    async with running(
        DataSystem.custom(initializers=[first, second, third], synchronizers=[sync])
    ) as h:
        await first.put(Basis(change_set=None, error=error(503)))
        await second.wait_started()
        assert first.finallies == 1
        await second.put(
            basis(put("a", "from-file"), state="")
        )  # data, but no selector
        await third.wait_started()
        assert h.value("a") == "from-file"
        assert h.state() is SourceState.INITIALIZING
        await third.put(basis(put("a", "fresh")))
        await sync.wait_started()
        assert h.value("a") == "fresh"
        # Initializers never report VALID; the error stays sticky.
        assert h.state() is SourceState.INITIALIZING
        assert h.supervisor.status.error == error(503)


@pytest.mark.asyncio
async def test_initializers_only_settle_with_what_they_gave() -> None:
    async with running(
        DataSystem.custom(initializers=[Ended(basis(put("a"), state=""))])
    ) as h:
        await h.done.wait()
        assert h.value("a") is True
        assert h.state() is SourceState.VALID


@pytest.mark.asyncio
async def test_no_data_and_no_synchronizers_is_off() -> None:
    async with running(DataSystem.custom(initializers=[Ended()])) as h:
        await h.done.wait()
        assert h.state() is SourceState.OFF


@pytest.mark.asyncio
async def test_an_initializer_that_raises_is_a_failed_initializer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boom, good = Scripted[Basis]("boom"), Scripted[Basis]("good")
    async with running(DataSystem.custom(initializers=[boom, good])) as h:
        await boom.put(RuntimeError("bug in a source"))
        await good.wait_started()  # the next initializer runs
        await good.put(basis(put("a")))
        await h.done.wait()
        assert h.value("a") is True
    assert "bug in a source" in caplog.text and "Traceback" in caplog.text


@pytest.mark.asyncio
async def test_a_source_yielding_the_wrong_type_is_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    init = Scripted[object]("weird")
    sync = Scripted[object]("weird-sync")
    # Custom sources are user code: the supervisor must survive wrong yields.
    system = DataSystem.custom(initializers=[init], synchronizers=[sync])  # type: ignore[list-item]
    async with running(system) as h:
        await init.put("not a basis")
        await init.put(basis(put("a")))
        await sync.put(42)
        await sync.put(valid(put("a", "b")))
        assert h.value("a") == "b"
    assert "not a Basis" in caplog.text and "not an Update" in caplog.text


# ------------------------------------------------------------ synchronizers


@pytest.mark.asyncio
async def test_first_valid_settles_and_applies() -> None:
    sync = Scripted[Update]("s")
    async with running(DataSystem.custom(synchronizers=[sync])) as h:
        assert h.state() is SourceState.INITIALIZING
        await sync.put(valid(put("a", 1)))
        assert h.value("a") == 1
        assert h.recorder.states == [SourceState.VALID]
        assert h.recorder.changes == [frozenset({"a"})]


@pytest.mark.asyncio
async def test_interrupted_while_initializing_stays_initializing_and_errors_are_sticky() -> (
    None
):
    sync = Scripted[Update]("s")
    async with running(DataSystem.custom(synchronizers=[sync])) as h:
        await sync.put(Update(state=SourceState.INTERRUPTED, error=error(503)))
        assert h.state() is SourceState.INITIALIZING
        await sync.put(valid(put("a")))
        assert h.state() is SourceState.VALID
        assert h.supervisor.status.error == error(503)
        await sync.put(Update(state=SourceState.INTERRUPTED, error=error(500)))
        assert h.state() is SourceState.INTERRUPTED
        since = h.supervisor.status.since
        await h.clock.advance(1)
        await sync.put(Update(state=SourceState.INTERRUPTED, error=error(502)))
        assert h.supervisor.status.since == since  # same state: since unchanged
        assert h.supervisor.status.error == error(502)
        count = len(h.recorder.statuses)
        await sync.put(Update(state=SourceState.INTERRUPTED))
        assert (
            len(h.recorder.statuses) == count
        )  # same state, no error: no notification


@pytest.mark.asyncio
async def test_failover_after_initializing_timeout_then_recovery() -> None:
    primary, secondary = Scripted[Update]("primary"), Scripted[Update]("secondary")
    async with running(DataSystem.custom(synchronizers=[primary, secondary])) as h:
        await primary.wait_started()
        await h.clock.wait_for_sleeper(within=10)
        await h.clock.advance(9.9)
        await h.clock.advance(0.1)
        await secondary.wait_started()
        assert primary.finallies == 1 and secondary.started_at == [10]
        await secondary.put(valid(put("a")))
        await h.clock.wait_for_sleeper(within=300)  # the recovery timer
        await h.clock.advance(299)
        await h.clock.advance(1)
        await primary.wait_started(2)
        assert secondary.finallies == 1 and primary.started_at == [0, 310]


@pytest.mark.asyncio
async def test_failover_after_interrupted_timeout_and_wraps() -> None:
    primary, secondary = Scripted[Update]("primary"), Scripted[Update]("secondary")
    system = DataSystem.custom(synchronizers=[primary, secondary]).with_timings(
        interrupted_timeout=30
    )
    async with running(system) as h:
        await primary.put(valid(put("a")))
        await h.clock.advance(1000)  # VALID on the primary: nothing happens
        await primary.put(Update(state=SourceState.INTERRUPTED, error=error(503)))
        await h.clock.wait_for_sleeper(within=30)
        await h.clock.advance(29)
        await h.clock.advance(1)
        await secondary.wait_started()
        assert secondary.started_at == [1030]
        await h.clock.wait_for_sleeper(within=10)
        # the secondary never reports: back to the primary (wraps)
        await h.clock.advance(10)
        await primary.wait_started(2)
        assert primary.started_at == [0, 1040]
        assert h.value("a") is True  # last good data served throughout


@pytest.mark.asyncio
async def test_a_new_synchronizer_that_hangs_fails_over_even_after_a_valid_one() -> (
    None
):
    """Per-run timing: LaunchDarkly's SDK would keep a hung secondary forever here."""
    primary, secondary = Scripted[Update]("primary"), Scripted[Update]("secondary")
    async with running(DataSystem.custom(synchronizers=[primary, secondary])) as h:
        await primary.put(valid(put("a")))
        await primary.put(Update(state=SourceState.OFF, error=error(404)))
        await secondary.wait_started()
        await h.clock.wait_for_sleeper(within=10)
        await h.clock.advance(10)
        await secondary.wait_started(2)  # the only one left: restarted
        assert secondary.started_at == [0, 10]


@pytest.mark.asyncio
async def test_off_removes_for_good_and_none_left_is_off() -> None:
    primary, secondary = Scripted[Update]("primary"), Scripted[Update]("secondary")
    async with running(DataSystem.custom(synchronizers=[primary, secondary])) as h:
        await primary.put(Update(state=SourceState.OFF, error=error(401, fatal=True)))
        assert primary.finallies == 1 and secondary.starts == 1
        await secondary.put(valid(put("a")))
        await h.clock.advance(10_000)
        assert primary.starts == 1  # never revisited, even past the recovery window
        await secondary.put(Update(state=SourceState.OFF, error=error(403, fatal=True)))
        await h.done.wait()
        assert h.state() is SourceState.OFF
        assert h.supervisor.status.error == error(403, fatal=True)
        assert h.value("a") is True


@pytest.mark.asyncio
async def test_a_synchronizer_that_ends_or_raises_is_removed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ended = Ended(valid(put("a")))
    boom = Scripted[Update]("boom")
    last = Scripted[Update]("last")
    async with running(DataSystem.custom(synchronizers=[ended, boom, last])) as h:
        await boom.wait_started()
        assert ended.starts == 1
        await boom.put(ValueError("source bug"))
        await last.wait_started()
        await last.put(valid(put("a", "still")))
        assert h.value("a") == "still"
        await h.clock.advance(10_000)
        await last.put(valid(put("a", "later")))  # still the only one running
        assert ended.starts == 1 and boom.starts == 1 and last.starts == 1
    assert "source bug" in caplog.text


@pytest.mark.parametrize(
    ("raised", "kind", "status_code"),
    [
        (
            SourceError("the gateway said no", status_code=503),
            ErrorKind.ERROR_RESPONSE,
            503,
        ),
        (SourceError("no route to the service"), ErrorKind.NETWORK_ERROR, 0),
        (ProtocolError("not a flag payload"), ErrorKind.INVALID_DATA, 0),
    ],
    ids=["status", "network", "protocol"],
)
@pytest.mark.asyncio
async def test_a_source_error_is_a_reported_failure_not_a_bug(
    raised: SourceError,
    kind: ErrorKind,
    status_code: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, last = Scripted[Update]("first"), Scripted[Update]("last")
    async with running(DataSystem.custom(synchronizers=[first, last])) as h:
        await first.put(raised)
        await last.wait_started()  # the failed synchronizer was dropped
        error = h.supervisor.status.error
        assert error is not None
        assert (error.kind, error.status_code) == (kind, status_code)
        assert error.message == f"Data source synchronizer 0: {raised}"
    assert str(raised) in caplog.text
    assert "Traceback" not in caplog.text and "unexpectedly" not in caplog.text


# ---------------------------------------------------------------- directive


@pytest.mark.parametrize("with_fdv1", [True, False], ids=["fdv1", "no-fdv1"])
@pytest.mark.parametrize(
    "result",
    [
        "basis",
        "initializer-error",
    ],
)
@pytest.mark.asyncio
async def test_directive_in_the_initializer_phase(result: str, with_fdv1: bool) -> None:
    init = Scripted[Basis]("init")
    sync = Scripted[Update]("fdv2-sync")
    fdv1 = Scripted[Update]("fdv1")
    system = DataSystem.custom(
        initializers=[init],
        synchronizers=[sync],
        fdv1_fallback=fdv1 if with_fdv1 else None,
    )
    async with running(system) as h:
        if result == "basis":
            await init.put(basis(put("a", "payload"), fallback=True))
            # the payload is applied before the switch
            await h.wait_value("a", "payload")
        else:
            await init.put(
                Basis(change_set=None, error=error(500), fallback_to_fdv1=True)
            )
        if with_fdv1:
            await fdv1.wait_started()
        else:
            await h.done.wait()
        assert init.finallies == 1
        assert sync.starts == 0  # FDv2 synchronizers are never contacted
        assert h.supervisor.status.fdv1_fallback
        if with_fdv1:
            await fdv1.put(valid(put("a", "fdv1"), state=""))
            assert h.value("a") == "fdv1"
            assert h.state() is SourceState.VALID
        else:
            await h.done.wait()
            assert h.state() is SourceState.OFF
        await h.clock.advance(10_000)
        if with_fdv1:
            await fdv1.put(valid(put("a", "fdv1 later"), state=""))
            assert fdv1.starts == 1
        assert sync.starts == 0


@pytest.mark.parametrize("with_fdv1", [True, False], ids=["fdv1", "no-fdv1"])
@pytest.mark.parametrize(
    "state", [SourceState.VALID, SourceState.INTERRUPTED, SourceState.OFF]
)
@pytest.mark.asyncio
async def test_directive_in_the_synchronizer_phase(
    state: SourceState, with_fdv1: bool
) -> None:
    primary, secondary = Scripted[Update]("primary"), Scripted[Update]("secondary")
    fdv1 = Scripted[Update]("fdv1")
    system = DataSystem.custom(
        synchronizers=[primary, secondary], fdv1_fallback=fdv1 if with_fdv1 else None
    )
    async with running(system) as h:
        await primary.put(valid(put("a", "old")))
        change = (
            valid(put("a", "payload")).change_set
            if state is SourceState.VALID
            else None
        )
        await primary.put(
            Update(
                state=state,
                change_set=change,
                error=None if state is SourceState.VALID else error(503),
                fallback_to_fdv1=True,
            )
        )
        if with_fdv1:
            await fdv1.wait_started()
        else:
            await h.done.wait()
        assert primary.finallies == 1
        assert h.value("a") == ("payload" if state is SourceState.VALID else "old")
        assert fdv1.starts == (1 if with_fdv1 else 0)
        await h.clock.advance(10_000)  # past every failover and recovery window
        if with_fdv1:
            await fdv1.put(valid(put("a", "fdv1"), state=""))  # still running
            assert fdv1.starts == 1
        assert primary.starts == 1 and secondary.starts == 0
        if not with_fdv1:
            assert h.state() is SourceState.OFF
            assert h.supervisor.status.fdv1_fallback


@pytest.mark.asyncio
async def test_directive_from_fdv1_itself_is_ignored_and_fdv1_off_ends() -> None:
    sync, fdv1 = Scripted[Update]("s"), Scripted[Update]("fdv1")
    async with running(
        DataSystem.custom(synchronizers=[sync], fdv1_fallback=fdv1)
    ) as h:
        await sync.put(valid(put("a"), fallback=True))
        await fdv1.put(valid(put("a", 2), state="", fallback=True))
        assert fdv1.starts == 1 and h.value("a") == 2
        await fdv1.put(Update(state=SourceState.INTERRUPTED, error=error(502)))
        assert h.state() is SourceState.INTERRUPTED
        await fdv1.put(Update(state=SourceState.OFF, error=error(404)))
        await h.done.wait()
        assert h.state() is SourceState.OFF
        assert sync.starts == 1


@pytest.mark.asyncio
async def test_fdv1_that_raises_or_ends(caplog: pytest.LogCaptureFixture) -> None:
    sync, fdv1 = Scripted[Update]("s"), Scripted[Update]("fdv1")
    async with running(
        DataSystem.custom(synchronizers=[sync], fdv1_fallback=fdv1)
    ) as h:
        await sync.put(valid(put("a"), fallback=True))
        await fdv1.put(RuntimeError("fdv1 bug"))
        await h.done.wait()
        assert h.state() is SourceState.OFF
    assert "fdv1 bug" in caplog.text
    ended = Ended("junk", valid(put("b"), state=""))
    async with running(
        DataSystem.custom(
            synchronizers=[Ended(valid(put("a"), fallback=True))], fdv1_fallback=ended
        )
    ) as h:
        await h.done.wait()
        assert h.value("b") is True
        assert h.state() is SourceState.OFF


# ----------------------------------------------------------------- shutdown


@pytest.mark.parametrize(
    "phase", ["initializer", "synchronizer", "failover-timer", "fdv1"]
)
@pytest.mark.asyncio
async def test_shutdown_in_each_phase_runs_every_finally(phase: str) -> None:
    init, primary, secondary, fdv1 = (
        Scripted[Basis]("i"),
        Scripted[Update]("p"),
        Scripted[Update]("s"),
        Scripted[Update]("f"),
    )
    system = DataSystem.custom(
        initializers=[init], synchronizers=[primary, secondary], fdv1_fallback=fdv1
    )
    async with running(system) as h:
        if phase != "initializer":
            await init.put(basis(put("a")))
        if phase == "fdv1":
            await primary.put(valid(put("a"), fallback=True))
        elif phase == "failover-timer":
            await h.clock.wait_for_sleeper(within=10)
            await h.clock.advance(10)
            await secondary.wait_started()
            assert secondary.active
    for source in (init, primary, secondary, fdv1):
        assert not source.active
        assert source.finallies == source.starts


@pytest.mark.asyncio
async def test_supervisor_bug_is_contained(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = Scripted[Update]("s")

    async def broken(self: Store, change_set: object) -> frozenset[str]:
        raise RuntimeError("store exploded")

    monkeypatch.setattr(Store, "apply", broken)
    async with running(DataSystem.custom(synchronizers=[sync])) as h:
        await sync.put(valid(put("a")))
        await h.done.wait()
        assert h.state() is SourceState.OFF
        assert h.supervisor.status.error is not None
        assert "store exploded" in h.supervisor.status.error.message
    assert "failed unexpectedly" in caplog.text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: DataSystem.polling(interval="5"),  # type: ignore[arg-type]
            r"^DataSystem\.polling\(interval=\.\.\.\) must be a number of seconds, "
            r"got '5'$",
        ),
        (lambda: DataSystem.polling(interval=True), r"polling\(interval="),
        (lambda: DataSystem.file("f.json", reload="yes"), r"file\(reload=.*'yes'"),  # type: ignore[arg-type]
        (lambda: DataSystem.file("f.json", interval="1"), r"file\(interval="),  # type: ignore[arg-type]
        (lambda: DataSystem.file(5), "takes file paths, got 5"),  # type: ignore[arg-type]
        (
            lambda: DataSystem.custom(initializers=sources.polling_initializer()),  # type: ignore[arg-type]
            r"initializers must be a list \(or another iterable\) of source factories",
        ),
        (
            lambda: DataSystem.default().with_timings(recovery_after="5"),  # type: ignore[arg-type]
            "recovery_after must be a number of seconds",
        ),
        (
            lambda: sources.polling_synchronizer(interval="60"),  # type: ignore[arg-type]
            r"^polling_synchronizer\(interval=\.\.\.\) must be a number",
        ),
        (
            lambda: sources.fdv1_polling_synchronizer(interval=0),
            r"^fdv1_polling_synchronizer\(interval=\.\.\.\) must be > 0",
        ),
        (
            lambda: sources.polling_initializer(base_uri="relay:8030"),
            r"^polling_initializer\(base_uri=\.\.\.\) must be an http",
        ),
        (
            lambda: sources.streaming_synchronizer(initial_retry_delay="1"),  # type: ignore[arg-type]
            r"^streaming_synchronizer\(initial_retry_delay=\.\.\.\)",
        ),
        (
            lambda: sources.fdv1_streaming_synchronizer(base_uri=5),  # type: ignore[arg-type]
            r"^fdv1_streaming_synchronizer\(base_uri=\.\.\.\)",
        ),
    ],
    ids=[
        "polling-interval-str",
        "polling-interval-bool",
        "file-reload-str",
        "file-interval-str",
        "file-path-int",
        "custom-one-factory",
        "with-timings-str",
        "polling-sync-interval",
        "fdv1-polling-zero",
        "initializer-uri",
        "streaming-delay",
        "fdv1-streaming-uri",
    ],
)
def test_datasystem_and_source_options_of_a_wrong_type_name_the_option(
    make: Callable[[], object], message: str
) -> None:
    """A ConfigurationError when made, not a TypeError (or worse) when the source runs."""
    from aioflags import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        make()


def test_datasystem_validation() -> None:
    from aioflags import ConfigurationError

    with pytest.raises(ConfigurationError, match="initializing_timeout"):
        DataSystem.custom().with_timings(initializing_timeout=0)
    with pytest.raises(ConfigurationError, match="callables"):
        DataSystem.custom(synchronizers=["nope"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="fdv1_fallback"):
        DataSystem.custom(fdv1_fallback="nope")  # type: ignore[arg-type]
    system = DataSystem.custom().with_timings(recovery_after=5)
    assert (
        system.initializing_timeout,
        system.interrupted_timeout,
        system.recovery_after,
    ) == (10, 60, 5)
